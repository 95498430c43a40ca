"""Training the embedded video model: world clips at base size, and resumable rectified flow."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from imagineer.engines.embedded.engine import read_exported
from imagineer.engines.embedded.text import TextEncoder, TextStates
from imagineer.engines.embedded.unet import UNetConfig
from imagineer.engines.embedded.video_unet import (
    CAMERA_CLASSES,
    ClipCondition,
    VideoUNet,
    VideoUNetConfig,
    camera_index,
    shifted_times,
)
from imagineer.train import data as image_data
from imagineer.train.flow import drop_captions, write_checkpoint
from imagineer.video.camera import CAMERA_MOVES, CameraPath
from imagineer.world.captions import caption
from imagineer.world.motion import WorldMotion, next_time, render_frame
from imagineer.world.scene import sample_scene

VIDEO_FILE = "embedded_video.safetensors"
CLIP_FRAMES = 16
CLIP_SECONDS = 2.5  # 16 frames at 6 per second: the base rate the engine interpolates from
BASE_SIZE = 32
CHUNK = 250  # clips per render (and mask) job
CONTEXT_FRAMES = 4  # frames an extension window starts from


# --- data ----------------------------------------------------------------------------------------


def sample_clip_motion(rng: np.random.Generator) -> WorldMotion:
    """A world clip for training: a camera move at a --motion level, things moving at a speed
    that goes with it (high: faster cars, birds and clouds), sometimes the light changing."""
    scene = sample_scene(rng)
    move = CAMERA_MOVES[int(rng.integers(len(CAMERA_MOVES)))]
    motion = "high" if rng.random() < 0.5 else "low"
    fast = motion == "high"
    return WorldMotion(
        scene=scene,
        seconds=CLIP_SECONDS,
        camera=CameraPath(move, motion).contained(CLIP_SECONDS),
        object_speed=float(rng.uniform(0.9, 1.6) if fast else rng.uniform(0.3, 0.9)),
        cloud_speed=float(rng.uniform(0.02, 0.05) if fast else rng.uniform(0.0, 0.02)),
        sun_drop=float(rng.uniform(0.0, 0.04)),
        time_to=next_time(scene.time) if rng.random() < 0.25 else None,
    )


def _chunks(count: int, seed: int) -> list[tuple[int, int, int]]:
    """(seed, clips, index of the first) of each chunk of `count` clips: the rendering and the
    masks split the same way, so the masks can replay each chunk's draws."""
    return [
        (seed * 100_000 + i, min(CHUNK, count - i * CHUNK), i * CHUNK)
        for i in range(-(-count // CHUNK))
    ]


def _draws(seed: int, n: int) -> Iterator[tuple[WorldMotion, str]]:
    """The motions and captions of one chunk, in the order its generator draws them."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        motion = sample_clip_motion(rng)
        yield motion, caption(motion.scene, rng).text


def _frames(motion: WorldMotion) -> np.ndarray:
    """(CLIP_FRAMES, h, w, 3) uint8: the clip's frames at base size."""
    ts = [k / (CLIP_FRAMES - 1) for k in range(CLIP_FRAMES)]
    return np.stack([render_frame(motion, t, BASE_SIZE, BASE_SIZE) for t in ts])


def _render_clips(
    args: tuple[int, int, int],
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Render one chunk of clips (runs in a worker process)."""
    seed, n, _ = args
    clips = np.empty((n, CLIP_FRAMES, BASE_SIZE, BASE_SIZE, 3), dtype=np.uint8)
    cameras = np.empty(n, dtype=np.int16)
    captions, records = [], []
    for i, (motion, text) in enumerate(_draws(seed, n)):
        clips[i] = _frames(motion)
        cameras[i] = camera_index(motion.camera.move, motion.camera.motion)
        captions.append(text)
        records.append(
            json.dumps(
                {
                    "scene": motion.scene.to_dict(),
                    "camera": motion.camera.to_text(),
                    "object_speed": motion.object_speed,
                    "time_to": motion.time_to,
                }
            )
        )
    return clips, cameras, captions, records


def build_clips(
    out: Path, count: int, *, seed: int = 0, workers: int = 2, log: Callable[[str], None] = print
) -> None:
    """Render, caption and encode `count` training clips into `out` (once; reruns skip it)."""
    if (out / "done").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    log(f"rendering {count} clips of {CLIP_FRAMES} frames at {BASE_SIZE}x{BASE_SIZE}")
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_render_clips, _chunks(count, seed)))
    np.save(out / "clips.npy", np.concatenate([p[0] for p in parts]))
    np.save(out / "cameras.npy", np.concatenate([p[1] for p in parts]))
    captions = [c for p in parts for c in p[2]]
    (out / "captions.json").write_text(json.dumps(captions))
    (out / "clips.jsonl").write_text("\n".join(r for p in parts for r in p[3]) + "\n")
    encoder = TextEncoder("cpu")
    log(f"encoding {len(captions)} captions")
    image_data._encode_to(out, captions, encoder)
    null = encoder.encode([""])
    torch.save({"tokens": null.tokens[0], "mask": null.mask[0]}, out / "null_text.pt")
    (out / "done").write_text("ok")


def _mask_clips(args: tuple[str, int, int, int]) -> np.ndarray:
    """Object masks of one chunk of clips, replaying its draws."""
    folder, seed, n, offset = args
    clips = np.load(Path(folder) / "clips.npy", mmap_mode="r")
    masks = np.zeros((n, CLIP_FRAMES, BASE_SIZE, BASE_SIZE), dtype=np.uint8)
    for i, (motion, _) in enumerate(_draws(seed, n)):
        if motion.scene.objects is None:
            continue
        full = np.asarray(clips[offset + i])
        if motion.scene.style == "noir":  # noir stretches the contrast of the whole frame
            motion = replace(motion, scene=replace(motion.scene, style="photo"))
            full = _frames(motion)
        bare = _frames(replace(motion, scene=replace(motion.scene, objects=None)))
        diff = np.abs(full.astype(np.int16) - bare.astype(np.int16)).max(axis=-1)
        masks[i] = diff > image_data.MASK_THRESHOLD
    return masks


def clip_masks(
    folder: Path, *, seed: int = 0, workers: int = 2, log: Callable[[str], None] = print
) -> None:
    """Write masks.npy (N, F, h, w): the pixels each frame's moving objects cover, found by
    drawing every clip again without them (for --object-weight)."""
    if (folder / "masks.npy").exists():
        return
    count = len(np.load(folder / "cameras.npy"))
    jobs = [(str(folder), *chunk) for chunk in _chunks(count, seed)]
    log(f"masking the objects of {count} clips")
    with ProcessPoolExecutor(workers) as pool:
        masks = np.concatenate(list(pool.map(_mask_clips, jobs)))
    np.save(folder / "masks.tmp.npy", masks)
    (folder / "masks.tmp.npy").replace(folder / "masks.npy")
    log(f"  objects cover {masks.mean():.1%} of the pixels")


@dataclass
class ClipSet:
    """The clips in memory: uint8 frames, camera classes and cached text states."""

    clips: np.ndarray  # (N, F, h, w, 3) uint8
    cameras: torch.Tensor  # (N,)
    tokens: np.ndarray  # (N, L, HIDDEN) float16
    lengths: np.ndarray  # (N,)
    null: TextStates
    masks: np.ndarray | None = None  # (N, F, h, w) uint8: object pixels (`clip_masks`)

    @classmethod
    def load(cls, folder: Path) -> ClipSet:
        null = torch.load(folder / "null_text.pt")
        masks = folder / "masks.npy"
        cameras = np.load(folder / "cameras.npy").astype(np.int64)
        lines = (folder / "clips.jsonl").read_text().splitlines()
        light = np.array([json.loads(line)["time_to"] is not None for line in lines])
        cameras = np.where(light, cameras + CAMERA_CLASSES, cameras)  # the light changes
        return cls(
            np.load(folder / "clips.npy", mmap_mode="r"),
            torch.from_numpy(cameras),
            np.load(folder / "tokens.npy", mmap_mode="r"),
            np.load(folder / "lengths.npy"),
            TextStates(null["tokens"][None], null["mask"][None]),
            np.load(masks, mmap_mode="r") if masks.exists() else None,
        )

    def object_mask(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, F, 1, h, w) float: 1 where the clips' objects are."""
        if self.masks is None:
            raise ValueError("no masks.npy: run `clip_masks` (imagineer train video does)")
        masks = np.stack([self.masks[i] for i in idx.numpy()])
        return torch.from_numpy(masks).float()[:, :, None]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, TextStates, torch.Tensor]:
        """(B, F, 3, h, w) in [-1, 1], the captions' text states, the camera classes."""
        order = idx.numpy()
        frames = torch.from_numpy(np.stack([self.clips[i] for i in order]))
        x0 = frames.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
        n = int(self.lengths[order].max())
        tokens = torch.from_numpy(np.stack([self.tokens[i, :n] for i in order]).astype(np.float32))
        mask = (
            torch.arange(n)[None] < torch.from_numpy(self.lengths[order].astype(np.int64))[:, None]
        )
        return x0, TextStates(tokens, mask), self.cameras[idx]


# --- training ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoTrainConfig:
    """Everything a video training run depends on; saved in the checkpoint."""

    data: Path
    run: Path
    init: Path  # the image model's exported weights: the video model grows from them
    minutes: float = 60.0
    batch: int = 4  # clips per step (each CLIP_FRAMES frames)
    lr: float = 6e-5  # for the image model's own weights
    lr_new: float = 3e-4  # for the temporal layers, the camera vector and the input stem
    warmup: int = 50
    ema: float = 0.998
    caption_dropout: float = 0.1
    t_shift: float = 1.5
    object_weight: float = 0.0  # extra loss weight on object pixels (needs masks.npy)
    end_share: float = 0.2  # clips trained with their last frame given (--end, --loop)
    extend_share: float = 0.2  # clips trained with their first CONTEXT_FRAMES frames given
    checkpoint_every_s: float = 300.0
    log_every: int = 10
    threads: int | None = None
    seed: int = 0


def known_frames(
    b: int, frames: int, end_share: float, extend_share: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which frames each clip is given: (B, F) bool, and (B,) whether its last frame is given.

    The first frame is always given (text-to-video samples it with the image model first);
    some clips also get their last frame, others their first CONTEXT_FRAMES (an extension).
    """
    known = torch.zeros(b, frames, dtype=torch.bool)
    known[:, 0] = True
    r = torch.rand(b, generator=gen)
    has_end = r < end_share
    extend = (r >= end_share) & (r < end_share + extend_share)
    known[has_end, -1] = True
    known[extend, :CONTEXT_FRAMES] = True
    return known, has_end


def video_flow_loss(
    model: VideoUNet,
    x0: torch.Tensor,
    text: TextStates,
    camera: torch.Tensor,
    known: torch.Tensor,
    has_end: torch.Tensor,
    gen: torch.Generator,
    t_shift: float = 1.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rectified-flow loss on the frames that are not given; given frames enter clean (t = 0).

    `weight` (B, F, 1, h, w), if given, weighs each pixel's squared error (objects count more).
    """
    b, f = x0.shape[:2]
    t = shifted_times(torch.randn(b, generator=gen), t_shift)[:, None].expand(b, f)
    t = torch.where(known, torch.zeros_like(t), t).reshape(b * f)
    flat = x0.reshape(b * f, *x0.shape[2:])
    noise = torch.randn(flat.shape, generator=gen)
    xt = (1 - t)[:, None, None, None] * flat + t[:, None, None, None] * noise
    cond = ClipCondition(
        start=x0[:, 0],
        end=torch.where(has_end[:, None, None, None], x0[:, -1], torch.zeros_like(x0[:, -1])),
        has_start=torch.ones(b),
        has_end=has_end.float(),
        camera=camera,
    )
    sq = (model.forward_clip(xt, t, text, cond) - (noise - flat)).square()
    if weight is None:
        err = sq.mean(dim=(1, 2, 3))
    else:
        w = weight.reshape(b * f, 1, *x0.shape[3:])
        err = (sq * w).sum(dim=(1, 2, 3)) / (w.sum(dim=(1, 2, 3)) * x0.shape[2])
    frames = (~known).reshape(b * f).float()
    return (err * frames).sum() / frames.sum()


class VideoTrainer:
    """Owns the video model, its EMA copy and the optimiser; checkpoints and resumes."""

    def __init__(self, cfg: VideoTrainConfig, log: Callable[[str], None] = print) -> None:
        self.cfg, self.log = cfg, log
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        image = read_exported(cfg.init)
        self.video_cfg = VideoUNetConfig(unet=UNetConfig.from_dict(image.config))
        self.model = VideoUNet(self.video_cfg)
        self.model.load_image_weights(image.state)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        new = [
            p
            for n, p in self.model.named_parameters()
            if n.startswith(("temporal_", "camera.", "stem."))
        ]
        ids = {id(p) for p in new}
        old = [p for p in self.model.parameters() if id(p) not in ids]
        self.opt = torch.optim.AdamW(
            [{"params": old, "lr": cfg.lr}, {"params": new, "lr": cfg.lr_new}], weight_decay=0.01
        )
        self.base_lrs = [cfg.lr, cfg.lr_new]
        self.step, self.seconds = 0, 0.0
        self.gen = torch.Generator().manual_seed(cfg.seed)
        cfg.run.mkdir(parents=True, exist_ok=True)
        path = cfg.run / "checkpoint.pt"
        if path.exists():
            state = torch.load(path, weights_only=False)
            grew = self.model.load_grown(state["model"])
            self.ema.load_grown(state["ema"])
            if grew:
                log("grew the camera table for the light-change flag (fresh optimiser)")
            else:
                self.opt.load_state_dict(state["opt"])
            self.step, self.seconds = state["step"], state["seconds"]
            self.gen.set_state(state["gen"])
            log(f"resumed at step {self.step} ({self.seconds / 60:.1f} min trained)")

    def save(self) -> None:
        config = json.dumps(asdict(self.cfg), default=str)
        write_checkpoint(self.cfg.run / "checkpoint.pt", self, config=config)

    def export(self, folder: Path) -> Path:
        """EMA weights in fp16 with their shape and training figures (what the engine loads)."""
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().half().contiguous() for k, v in self.ema.state_dict().items()}
        meta = {
            "config": json.dumps(self.video_cfg.to_dict()),
            "step": str(self.step),
            "trained_minutes": f"{self.seconds / 60:.1f}",
            "batch": str(self.cfg.batch),
            "clip_seconds": str(CLIP_SECONDS),
        }
        path = folder / VIDEO_FILE
        tmp = path.with_suffix(".tmp")
        save_file(state, str(tmp), metadata=meta)
        tmp.replace(path)
        summary = {
            "video_unet": self.video_cfg.to_dict(),
            "step": self.step,
            "trained_minutes": round(self.seconds / 60, 1),
            "batch_clips": self.cfg.batch,
            "clip_frames": CLIP_FRAMES,
            "clip_seconds": CLIP_SECONDS,
            "object_weight": self.cfg.object_weight,
        }
        path.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
        return path

    def train(self, on_checkpoint: Callable[[VideoTrainer], None] | None = None) -> None:
        data = ClipSet.load(self.cfg.data)
        n = len(data.clips)
        start = last = time.perf_counter()
        base_seconds, run_step, losses = self.seconds, 0, []
        with (self.cfg.run / "log.jsonl").open("a") as logf:
            while (elapsed := time.perf_counter() - start) < self.cfg.minutes * 60:
                idx = torch.randint(n, (self.cfg.batch,), generator=self.gen)
                x0, text, camera = data.batch(idx)
                text = drop_captions(text, data.null, self.cfg.caption_dropout, self.gen)
                known, has_end = known_frames(
                    self.cfg.batch, x0.shape[1], self.cfg.end_share, self.cfg.extend_share, self.gen
                )
                warm = min(1.0, (run_step + 1) / self.cfg.warmup)
                for group, base in zip(self.opt.param_groups, self.base_lrs, strict=True):
                    group["lr"] = base * warm
                weight = None
                if self.cfg.object_weight > 0:
                    weight = 1.0 + self.cfg.object_weight * data.object_mask(idx)
                loss = video_flow_loss(
                    self.model, x0, text, camera, known, has_end, self.gen, self.cfg.t_shift, weight
                )
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.opt.step()
                decay = min(self.cfg.ema, (1 + run_step) / (10 + run_step))
                with torch.no_grad():
                    for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                        e.lerp_(p, 1 - decay)
                losses.append(float(loss.detach()))
                self.step += 1
                run_step += 1
                self.seconds = base_seconds + elapsed
                if self.step % self.cfg.log_every == 0:
                    row = {
                        "step": self.step,
                        "loss": round(sum(losses) / len(losses), 5),
                        "minutes": round(self.seconds / 60, 2),
                    }
                    losses.clear()
                    logf.write(json.dumps(row) + "\n")
                    logf.flush()
                    self.log(json.dumps(row))
                if time.perf_counter() - last > self.cfg.checkpoint_every_s:
                    self._checkpoint(on_checkpoint)
                    last = time.perf_counter()
        self._checkpoint(on_checkpoint)

    def _checkpoint(self, on_checkpoint: Callable[[VideoTrainer], None] | None) -> None:
        self.save()
        if on_checkpoint is not None:
            on_checkpoint(self)
        self.log(f"checkpoint at step {self.step} ({self.seconds / 60:.1f} min trained)")
