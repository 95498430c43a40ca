"""Benchmark video: the 10 s reel's time and per-shot adherence, image-to-video consistency,
temporal figures beside the world's own rendered motion, the trained video model against
zero-shot animation from the image model, and the zero-shot method's variants.

Run: python bench/bench_video.py [--n 12] [--reels 3] [--threads 2] [--seconds 10] [--skip-variants]
     [--sheet docs/video-reel.png]
(prints tables, writes bench/results/video.json)

What it measures, all with the shipped weights (the image and video checkpoints are printed;
the reel goes to whichever video engine the runtime routes to: the trained model when its
weights are installed):
1. reel: `Service.video.reel("a futuristic city at sunset with flying cars", seconds=10)` with the
   default marks (every frame watermarked, MP4 signed), cold (model loading included) and warm;
   wall and CPU seconds, the MP4 read back (frames, fps), and, for --reels seeds, per shot the
   share of its frames whose every attribute stated by the shot's line the world evaluator
   finds (target >= 0.8), beside the shot's first frame alone and the world's own render of
   the shot (same camera, objects moving).
2. temporal: per shot, motion-compensated frame error, jitter and flicker of the shot's clip
   beside the world's rendered clip with the same camera path.
3. image-to-video: n world renders animated 5 s (motion low and high); the evaluator's
   agreement between frame 0 and the last frame on the static attributes (time, weather,
   landscape, city, style; target >= 0.9), and the camera's measured pixels per frame.
4. methods on the reel's shots: the trained video model and zero-shot animation (with and
   without the redraw of known parts), paired over every seed's shots; then single-seed variants:
   the trained model's guidance, zero-shot residual or per-frame detail, flow or blend
   interpolation: CPU time, temporal figures and adherence.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from _harness import RESULTS_DIR, Report, Timing
from imagineer.config import Settings
from imagineer.engines.base import Capability, GenerationInput, RunControl
from imagineer.engines.embedded.engine import UNET_FILE, EmbeddedEngine, weights_dir
from imagineer.media.video import read_video
from imagineer.runtime import Runtime
from imagineer.service import Service
from imagineer.service.video import VideoOptions, VideoResult
from imagineer.video.camera import CameraPath
from imagineer.video.learned import VIDEO_FILE, LearnedConfig, LearnedVideoEngine
from imagineer.video.metrics import TemporalReport, camera_speed, temporal_report
from imagineer.video.reel import shot_frames
from imagineer.video.storyboard import Shot, Storyboard
from imagineer.video.zeroshot import ZeroShotConfig, ZeroShotVideoEngine
from imagineer.world import caption, sample_scene
from imagineer.world.captions import PromptSpec
from imagineer.world.evaluate import Evaluator, Prediction, scoreable
from imagineer.world.motion import WorldMotion, render_clip
from imagineer.world.scene import COLOURS, COUNTS, LANDSCAPES, POSITIONS, ObjectGroup, Scene

PROMPT = "a futuristic city at sunset with flying cars"
STATIC = ("time", "weather", "landscape", "city", "style")
SIZE = 256
FPS = 24


SHOT_COLS = (16, 7, 18, 7, 11)
TARGET = 0.8  # share of a shot's frames that must match its line
VAR_COLS = (40, 6, 11, 10, 8, 9, 11)
I2V_COLS = (22, 6, 15, 9, 10, 17, 12)


def line(cells: Sequence[object], widths: Sequence[int]) -> str:
    """One table row: the first cell left-aligned, numbers to 3 decimals (2 above 10)."""
    out = []
    for k, (cell, width) in enumerate(zip(cells, widths, strict=True)):
        text = f"{cell:.3f}" if isinstance(cell, float) else str(cell)
        out.append(text.ljust(width) if k == 0 else text.rjust(width))
    return "".join(out)


def checkpoint(name: str = UNET_FILE) -> dict[str, str]:
    path = weights_dir() / name
    if not path.exists():
        return {}
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return {k: meta[k] for k in ("step", "trained_minutes") if k in meta}


def learned_engine(
    image: EmbeddedEngine, config: LearnedConfig | None = None
) -> ZeroShotVideoEngine:
    """The trained video model over `image` (the shipped weights), with `config`."""
    engine = LearnedVideoEngine.load(image)
    if config is not None:
        engine.learned = config
    return engine


def scene_for(spec: PromptSpec, seed: int) -> Scene:
    """A world scene that shows what `spec` states (the rest drawn from `seed`)."""
    rng = np.random.default_rng(seed)
    objects = None
    if spec.kind is not None:
        objects = ObjectGroup(
            spec.kind,
            spec.colour or str(rng.choice(COLOURS)),
            spec.count or int(rng.choice(COUNTS)),
            spec.position or str(rng.choice(POSITIONS)),
        )
    return Scene(
        time=spec.time or "noon",
        weather=spec.weather or "clear",
        landscape=spec.landscape or str(rng.choice(LANDSCAPES)),
        city=spec.city or "none",
        objects=objects,
        style=spec.style or "photo",
        seed=seed,
    )


def frames_right(
    preds: Sequence[Prediction], scene: Scene, stated: frozenset[str], scored: Sequence[str]
) -> float:
    """Share of frames whose every stated, scoreable attribute matches `scene`."""
    checked = [a for a in scored if a in stated and scoreable(scene, a)]
    ok = [all(p.label(a) == scene.value(a) for a in checked) for p in preds]
    return float(np.mean(ok)) if ok else float("nan")


def per_attribute(
    preds: Sequence[Prediction], scene: Scene, stated: frozenset[str], scored: Sequence[str]
) -> dict[str, float]:
    return {
        a: round(float(np.mean([p.label(a) == scene.value(a) for p in preds])), 3)
        for a in scored
        if a in stated and scoreable(scene, a)
    }


def reference_clip(shot: Shot, fps: int, seed: int) -> list[np.ndarray]:
    """The world's own clip of the shot: its camera, objects moving, clouds drifting."""
    spec = shot.spec
    motion = WorldMotion(scene_for(spec, seed), seconds=shot.frames / fps, camera=shot.camera)
    return render_clip(motion, SIZE, SIZE, fps=fps)


# --- 1. the reel ---------------------------------------------------------------------------------


def run_reel(seconds: float, out: Path, threads: int) -> tuple[VideoResult, float, float, Runtime]:
    """The reel through a fresh runtime with the default marks: (result, wall s, CPU s, runtime)."""
    settings = dataclasses.replace(
        Settings(data_dir=out / "data", output_dir=out, threads=threads), watermark=True, sign=True
    )
    runtime = Runtime.from_settings(settings)
    service = Service(runtime, seed_source=lambda: 2026)
    wall, cpu = time.perf_counter(), time.process_time()
    result = service.video.reel(
        f"{PROMPT} --seed 2026", seconds=seconds, options=VideoOptions(out_dir=out)
    )
    return result, time.perf_counter() - wall, time.process_time() - cpu, runtime


def reel_section(
    args: argparse.Namespace, judge: Evaluator, report: Report
) -> tuple[Storyboard, EmbeddedEngine]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    _, cold_wall, cold_cpu, runtime = run_reel(args.seconds, tmp / "cold", args.threads)
    service = Service(runtime, seed_source=lambda: 2026)
    wall, cpu = time.perf_counter(), time.process_time()
    warm = service.video.reel(
        f"{PROMPT} --seed 2026", seconds=args.seconds, options=VideoOptions(out_dir=tmp / "warm")
    )
    warm_wall, warm_cpu = time.perf_counter() - wall, time.process_time() - cpu
    info = read_video(warm.path)
    board = warm.storyboard
    if board is None:
        raise RuntimeError("a reel always has a storyboard")
    t = warm.timings
    print(
        f"reel: {info.frame_count} frames at {info.fps:g} fps, {info.width}x{info.height}; "
        f"cold {cold_wall:.1f} s wall / {cold_cpu:.1f} s CPU, warm {warm_wall:.1f} s wall / "
        f"{warm_cpu:.1f} s CPU (generate {t.generate_s:.1f} s, save {t.save_s:.1f} s)"
    )
    report.add(
        Timing(
            "reel cold (load + generate + marks)",
            (cold_wall,),
            {"cpu_s": round(cold_cpu, 1), "frames": info.frame_count, "fps": info.fps},
        )
    )
    report.add(
        Timing(
            "reel warm",
            (warm_wall,),
            {
                "cpu_s": round(warm_cpu, 1),
                "generate_s": round(t.generate_s, 1),
                "save_s": round(t.save_s, 1),
            },
        )
    )
    if args.sheet is not None:
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(warm.contact_sheet.path, args.sheet)
        print(f"contact sheet: {args.sheet}")
    results = [(2026, info.frames)]
    for seed in range(2027, 2026 + args.reels):  # more seeds: adherence is a sample of reels
        more = service.video.reel(
            f"{PROMPT} --seed {seed}",
            seconds=args.seconds,
            options=VideoOptions(out_dir=tmp / "more"),
        )
        results.append((seed, read_video(more.path).frames))
    shot_scores: list[float] = []
    for seed, frames in results:
        shot_scores += score_reel(seed, list(frames), board, judge, report)
    passing = sum(score >= TARGET for score in shot_scores)
    print(f"shots with >= {TARGET:.0%} of frames right: {passing} of {len(shot_scores)}")
    report.add(Timing("shots passing", (0.0,), {"passing": passing, "shots": len(shot_scores)}))
    image = runtime.registry.get("embedded")
    if not isinstance(image, EmbeddedEngine):
        raise RuntimeError("the bench measures the embedded engine")
    return board, image


def score_reel(
    seed: int, frames: list[np.ndarray], board: Storyboard, judge: Evaluator, report: Report
) -> list[float]:
    """Per shot: the share of its frames with every stated attribute right (and the first)."""
    print(f"\nreel seed {seed}")
    head = ["shot", "frames", "all stated right", "first", "world ref"]
    print(line(head, SHOT_COLS) + "  per attribute")
    scores = []
    for shot, owned in zip(board.shots, shot_frames(frames, board), strict=True):
        scene = scene_for(shot.spec, seed=shot.index)
        stated = shot.spec.mentioned
        preds = judge.predict(owned)
        ref = reference_clip(shot, FPS, seed=shot.index)
        ref_right = frames_right(judge.predict(ref), scene, stated, judge.scored)
        right = frames_right(preds, scene, stated, judge.scored)
        first = frames_right(preds[:1], scene, stated, judge.scored)
        attrs = per_attribute(preds, scene, stated, judge.scored)
        label = f"{shot.index + 1} {shot.role}"
        cells = [label, len(owned), right, first, ref_right]
        print(line(cells, SHOT_COLS) + f"  {attrs}  ({shot.line})")
        report.add(
            Timing(
                f"seed {seed} shot {shot.index + 1} {shot.role}",
                (0.0,),
                {
                    "frames": len(owned),
                    "all_right": round(right, 3),
                    "first_frame_right": round(first, 3),
                    "world_ref_all_right": round(ref_right, 3),
                    **{f"acc_{k}": v for k, v in attrs.items()},
                },
            )
        )
        scores.append(right)
    return scores


# --- 2-4. engine-level measurements --------------------------------------------------------------


def clip(engine: ZeroShotVideoEngine, item: GenerationInput) -> tuple[list[np.ndarray], float]:
    start = time.process_time()
    frames = list(engine.generate([item], RunControl())[0].frames)
    return frames, time.process_time() - start


def shot_input(shot: Shot, seed: int) -> GenerationInput:
    return GenerationInput(
        Capability.TEXT_TO_VIDEO, shot.line, width=SIZE, height=SIZE, seed=seed + shot.seed_offset,
        steps=12, num_frames=shot.frames, fps=FPS, motion=shot.camera.motion, camera=shot.camera,
    )  # fmt: skip


def temporal_row(report: TemporalReport) -> dict[str, float]:
    return {
        "comp_err": round(report.compensated_error, 2),
        "jitter": round(report.jitter, 2),
        "flicker": round(report.flicker, 2),
        "camera_px": round(report.camera_px_per_frame, 2),
    }


def variants_section(
    image: EmbeddedEngine,
    board: Storyboard,
    judge: Evaluator,
    report: Report,
    *,
    skip: bool,
    seeds: Sequence[int],
) -> None:
    """The method's variants on the reel's shots. The redraw question (default against warps
    only) is paired over every seed's shots: adherence is decided mostly by the keyframe."""
    has_model = (weights_dir() / VIDEO_FILE).exists()
    paired: dict[str, ZeroShotVideoEngine] = {}
    if has_model:
        paired["trained video model"] = learned_engine(image)
    paired["zero-shot (residual, flow)"] = ZeroShotVideoEngine(image)
    paired["zero-shot, no redraw of known parts"] = ZeroShotVideoEngine(
        image, ZeroShotConfig(strength_low=0.0, strength_high=0.0)
    )
    single: dict[str, ZeroShotVideoEngine] = {
        "zero-shot per-frame upscale, flow": ZeroShotVideoEngine(
            image, ZeroShotConfig(detail="per_frame")
        ),
        "zero-shot residual, blend": ZeroShotVideoEngine(image, ZeroShotConfig(temporal="blend")),
    }
    if has_model:
        single["trained, per-frame upscale"] = learned_engine(
            image, LearnedConfig(detail="per_frame")
        )
        for g in (1.0, 3.0):
            single[f"trained, guidance {g:g}"] = learned_engine(image, LearnedConfig(guidance=g))
    head = ["variant", "shots", "cpu s/shot", "comp err", "jitter", "flicker", "all right"]
    print("\n" + line(head, VAR_COLS))
    refs = []
    for shot in board.shots:
        mats = shot.camera.matrices(shot.frames, shot.frames / FPS)
        refs.append(temporal_report(reference_clip(shot, FPS, seed=shot.index), mats))
    ref_mean = _mean_temporal(refs)
    print(line(["world reference", len(refs), "", *ref_mean.values(), ""], VAR_COLS))
    report.add(
        Timing("temporal: world reference", (0.0,), {k: round(v, 3) for k, v in ref_mean.items()})
    )
    runs = [(label, engine, seeds) for label, engine in paired.items()]
    if not skip:
        runs += [(label, engine, seeds[:1]) for label, engine in single.items()]
    for label, engine, run_seeds in runs:
        rows, cpu, right = [], 0.0, []
        for seed in run_seeds:
            for shot in board.shots:
                frames, seconds = clip(engine, shot_input(shot, seed))
                cpu += seconds
                mats = shot.camera.matrices(shot.frames, shot.frames / FPS)
                rows.append(temporal_report(frames, mats))
                scene = scene_for(shot.spec, shot.index)
                preds = judge.predict(frames)
                right.append(frames_right(preds, scene, shot.spec.mentioned, judge.scored))
        _variant_row(report, label, rows, cpu, right)
        if len(run_seeds) > 1 and not skip:  # the same shots as the single-seed variants
            n = len(board.shots)
            first = f"{label}, seed {run_seeds[0]}"
            _variant_row(report, first, rows[:n], cpu * n / len(rows), right[:n])


def _variant_row(
    report: Report, label: str, rows: Sequence[TemporalReport], cpu: float, right: list[float]
) -> None:
    mean = _mean_temporal(rows)
    cells = [label, len(rows), cpu / len(rows), *mean.values(), float(np.mean(right))]
    print(line(cells, VAR_COLS))
    extra: dict[str, str | int | float] = {k: round(v, 3) for k, v in mean.items()}
    extra.update(shots=len(rows), all_right=round(float(np.mean(right)), 3))
    extra.update(per_shot=",".join(f"{r:.2f}" for r in right))
    report.add(Timing(f"variant: {label}", (cpu / len(rows),), extra))


def _mean_temporal(rows: Sequence[TemporalReport]) -> dict[str, float]:
    keys = ("compensated_error", "jitter", "flicker")
    return {k: float(np.mean([getattr(r, k) for r in rows])) for k in keys}


def image_to_video_section(
    engine: ZeroShotVideoEngine, method: str, judge: Evaluator, n: int, report: Report
) -> None:
    from imagineer.world import render

    rng = np.random.default_rng(7)
    head = [f"image-to-video 5 s, {method}", "clips", "agree f0/last", "f0 true", "last true"]
    print("\n" + line([*head, "camera px/frame", "cpu s/clip"], I2V_COLS))
    for motion in ("low", "high"):
        agree, true0, true_last, speeds, cpu = [], [], [], [], 0.0
        for i in range(n):
            scene = sample_scene(rng)
            picture = render(scene, SIZE, SIZE)
            item = GenerationInput(
                Capability.IMAGE_TO_VIDEO, caption(scene, rng).text, width=SIZE, height=SIZE,
                seed=i, steps=12, num_frames=5 * FPS, fps=FPS, motion=motion, init_image=picture,
            )  # fmt: skip
            cpu_start = time.process_time()
            out = engine.generate([item], RunControl())[0]
            cpu += time.process_time() - cpu_start
            first, last = judge.predict([out.frames[0], out.frames[-1]])
            agree += [first.label(a) == last.label(a) for a in STATIC if a in judge.scored]
            true0 += [first.label(a) == scene.value(a) for a in STATIC if a in judge.scored]
            true_last += [last.label(a) == scene.value(a) for a in STATIC if a in judge.scored]
            camera = CameraPath.from_text(str(dict(out.extras)["camera"]))
            speeds.append(camera_speed(camera.matrices(len(out.frames), 5.0), (SIZE, SIZE)))
        row = {
            "agree": float(np.mean(agree)),
            "f0": float(np.mean(true0)),
            "last": float(np.mean(true_last)),
            "px": float(np.mean(speeds)),
        }
        cells = [row["agree"], row["f0"], row["last"], row["px"], cpu / n]
        print(line([f"motion {motion}", n, *cells], I2V_COLS))
        report.add(
            Timing(
                f"image-to-video {method} motion {motion}",
                (0.0,),
                {
                    "clips": n,
                    "agree_first_last": round(row["agree"], 3),
                    "first_true": round(row["f0"], 3),
                    "last_true": round(row["last"], 3),
                    "camera_px_per_frame": round(row["px"], 2),
                },
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="images animated per motion level")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the reel")
    parser.add_argument("--reels", type=int, default=3, help="reels (seeds) scored for adherence")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--skip-variants", action="store_true", help="only the default method")
    parser.add_argument(
        "--sheet", type=Path, default=None, help="copy the reel's contact sheet here"
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder for the JSON")
    parser.add_argument("--name", default="video", help="results file name")
    parser.add_argument(
        "--reel-only", action="store_true", help="only the reel's time and adherence"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    judge = Evaluator.load()
    report = Report(args.name)
    video = checkpoint(VIDEO_FILE)
    report.context.update(
        engine_checkpoint=checkpoint(), video_checkpoint=video, prompt=PROMPT, threads=args.threads
    )
    print(f"image checkpoint: {checkpoint()}; video checkpoint: {video or 'none (zero-shot)'}")
    # one load for the whole run: the weights file may be replaced while training goes on
    board, image = reel_section(args, judge, report)
    report.context.update(engine_model_hash=image.info.model_hash)
    if not args.reel_only:
        seeds = list(range(2026, 2026 + args.reels))
        variants_section(image, board, judge, report, skip=args.skip_variants, seeds=seeds)
        if (weights_dir() / VIDEO_FILE).exists():
            image_to_video_section(learned_engine(image), "trained", judge, args.n, report)
        image_to_video_section(ZeroShotVideoEngine(image), "zero-shot", judge, args.n, report)
    print(f"results: {report.write(args.results)}")
    print(json.dumps(report.context))


if __name__ == "__main__":
    sys.exit(main())
