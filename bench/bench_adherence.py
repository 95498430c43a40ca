"""Benchmark prompt adherence: the embedded model on held-out prompts, judged by the evaluator.

Run: python bench/bench_adherence.py [--steps 8] [--guidance 5] [--n 200] [--device cpu]
     [--weights FOLDER] [--threads 1]  (weights default: those shipped in the package)
(prints a table, writes bench/results/adherence.json)

For each of the `n` held-out prompts (object combinations never trained on) the embedded engine
samples one base image (32x32) with seed i; the world evaluator then checks every attribute the
prompt states, GenEval-style: per-attribute accuracy, their mean, and the share of prompts with
every stated attribute right. Rows beside it put the figures in context:
- reference: the world's own 32x32 renders of the same scenes (what a perfect model reaches);
- unconditional: the engine with an empty prompt, scored against the same targets (chance for
  this model's images);
- shuffled: the reference renders scored against another prompt's targets (chance for the world).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from _harness import RESULTS_DIR, Report, Timing
from imagineer.engines.base import Capability, GenerationInput, RunControl
from imagineer.engines.embedded.engine import (
    UNET_FILE,
    EmbeddedEngine,
    weights_available,
    weights_dir,
)
from imagineer.world import held_out_prompts, render
from imagineer.world.evaluate import AdherenceReport, Evaluator, EvaluatorError
from imagineer.world.scene import ATTRIBUTE_NAMES, Scene

BATCH = 8
Target = tuple[Scene, frozenset[str]]


def to_uint8(x: torch.Tensor) -> list[np.ndarray]:
    """(B, 3, H, W) tensor in [-1, 1] -> B arrays (H, W, 3) uint8, as the engine converts."""
    out = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    return list(np.ascontiguousarray(out.cpu().numpy()))


def checkpoint(folder: Path | None) -> dict[str, str]:
    """Training step and minutes recorded in the UNet's metadata (the weights are still moving)."""
    with safe_open(str((folder or weights_dir()) / UNET_FILE), framework="pt") as f:
        meta = f.metadata() or {}
    return {k: meta[k] for k in ("step", "trained_minutes") if k in meta}


def sample(
    engine: EmbeddedEngine, prompts: Sequence[str], steps: int, guidance: float
) -> list[np.ndarray]:
    """One base-size image per prompt (seed = its index), in batches of BATCH."""
    images: list[np.ndarray] = []
    for start in range(0, len(prompts), BATCH):
        batch = [
            GenerationInput(
                capability=Capability.TEXT_TO_IMAGE,
                prompt=text,
                width=256,
                height=256,
                seed=start + j,
                steps=steps,
                guidance=guidance,
            )
            for j, text in enumerate(prompts[start : start + BATCH])
        ]
        images += to_uint8(engine.sample_base(batch, RunControl()))
    return images


def timed(label: str, make: Callable[[], list[np.ndarray]]) -> tuple[list[np.ndarray], float]:
    start = time.perf_counter()
    images = make()
    seconds = time.perf_counter() - start
    print(f"{label}: {len(images)} images in {seconds:.1f} s", file=sys.stderr)
    return images, seconds


def as_timing(label: str, seconds: float, report: AdherenceReport) -> Timing:
    """One variant's figures as a harness row: time to make the images, adherence as columns."""
    extra: dict[str, str | int | float] = {
        a.attribute: round(a.accuracy, 4) for a in report.attributes if a.accuracy is not None
    }
    extra["mean"] = round(report.mean or 0.0, 4)
    extra["all_right"] = round(report.all_right or 0.0, 4)
    extra["prompts_scored"] = report.prompts_scored
    return Timing(label, (seconds,), extra)


def print_table(rows: dict[str, AdherenceReport], scored: Sequence[str]) -> None:
    """Attributes down, variants across."""
    labels = list(rows)
    width = max(len(a) for a in [*ATTRIBUTE_NAMES, "all stated right"]) + 2
    print("".ljust(width) + "".join(label.rjust(15) for label in labels))

    def line(name: str, values: list[float | None]) -> None:
        cells = ["—" if v is None else f"{v:.3f}" for v in values]
        print(name.ljust(width) + "".join(c.rjust(15) for c in cells))

    for name in scored:
        line(name, [r.accuracy(name) for r in rows.values()])
    line("mean", [r.mean for r in rows.values()])
    line("all stated right", [r.all_right for r in rows.values()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="sampling steps")
    parser.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance")
    parser.add_argument("--n", type=int, default=200, help="held-out prompts to score")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--name", default="adherence", help="results file name")
    parser.add_argument("--weights", type=Path, default=None, help="engine weights folder")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder for the JSON")
    args = parser.parse_args()
    if args.n < 1 or args.steps < 1:
        parser.error(f"--n {args.n} --steps {args.steps}: use at least 1 of each")
    torch.set_num_threads(args.threads)
    # 1. engine and judge: both must exist before any work
    why_not = weights_available(args.weights)
    if why_not is not None:
        sys.exit(f"cannot run the adherence benchmark: embedded model weights are {why_not}")
    try:
        judge = Evaluator.load(device=args.device)
    except EvaluatorError as err:
        sys.exit(f"cannot run the adherence benchmark: {err}")
    engine = EmbeddedEngine.load(args.weights, device=args.device)
    # 2. prompts and targets
    pairs = held_out_prompts(args.n)
    targets: list[Target] = [(scene, cap.mentioned) for scene, cap in pairs]
    shuffled = targets[1:] + targets[:1]  # every image judged against another prompt
    # 3. images: the model, the world's reference renders, the model without a prompt
    texts = [cap.text for _, cap in pairs]
    made, t_made = timed("engine", lambda: sample(engine, texts, args.steps, args.guidance))
    refs, t_refs = timed("reference", lambda: [render(s, 32, 32) for s, _ in pairs])
    empty = [""] * len(texts)
    blank, t_blank = timed(
        "unconditional", lambda: sample(engine, empty, args.steps, args.guidance)
    )
    # 4. score and report
    rows = {
        "engine": judge.score(made, targets),
        "reference": judge.score(refs, targets),
        "unconditional": judge.score(blank, targets),
        "shuffled ref": judge.score(refs, shuffled),
    }
    seconds = {"engine": t_made, "reference": t_refs, "unconditional": t_blank, "shuffled ref": 0.0}
    print(f"engine checkpoint: {checkpoint(args.weights)}")
    print_table(rows, judge.scored)
    report = Report(args.name)
    report.context.update(
        steps=args.steps,
        guidance=args.guidance,
        n=args.n,
        scored=list(judge.scored),
        engine_model_hash=engine.info.model_hash,
        engine_checkpoint=checkpoint(args.weights),
    )
    for label, row in rows.items():
        report.add(as_timing(label, seconds[label], row))
    print(f"results: {report.write(args.results)}")


if __name__ == "__main__":
    main()
