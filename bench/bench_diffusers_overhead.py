"""Overhead of imagineer's diffusers path over the bare diffusers pipeline, same tiny model.

Run: python bench/bench_diffusers_overhead.py [--steps 20] [--repeats 7] [--threads 1]
Builds a tiny random-weight Stable Diffusion folder (offline), registers it, then times one
2x2 grid both ways, alternating the two so machine load falls on both alike:
- bare: StableDiffusionPipeline.from_pretrained(folder)(4 prompts, negative prompts, one seeded
  generator per image, output_type="np") and the conversion to uint8;
- imagineer: DiffusersImageEngine.generate on the same four items (prompt mapping through
  embeddings, per-item generators, progress and cancellation callbacks, the cache lookup).
The pixels must match (checked); the ratio imagineer / bare is the overhead (target <= 1.05).
Both wall time and this process's CPU time are recorded: on a machine busy with other work
(training beside it) wall times swing by tens of percent between runs, while CPU time counts
only the work each path does, so the CPU-time ratio is the headline figure.
Writes bench/results/diffusers_overhead.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _harness import Report, Timing
from imagineer.engines.base import Capability, GenerationInput, RunControl
from imagineer.engines.diffusers_image import DiffusersImageEngine
from imagineer.models import AddOptions, Catalog, entry_for
from imagineer.models.loading import ModelManager
from imagineer.models.tiny import save_tiny_sd

PROMPT = "a futuristic city at sunset with flying cars"
NEGATIVE = "blurry"
GUIDANCE = 7.5
SIDE = 64  # the tiny model's base size


def grid_items(steps: int) -> list[GenerationInput]:
    return [
        GenerationInput(
            capability=Capability.TEXT_TO_IMAGE,
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            width=SIDE,
            height=SIDE,
            seed=seed,
            steps=steps,
            guidance=GUIDANCE,
        )
        for seed in range(4)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import StableDiffusionPipeline

    with tempfile.TemporaryDirectory() as tmp:
        folder = save_tiny_sd(Path(tmp) / "tiny-sd")
        catalog = Catalog(Path(tmp) / "data")
        entry = entry_for(str(folder), AddOptions(name="tiny"))
        catalog.add(entry)
        engine = DiffusersImageEngine(entry, ModelManager(catalog, "cpu"))
        bare = StableDiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
        bare.set_progress_bar_config(disable=True)
        items = grid_items(args.steps)
        steps_seen: list[int] = []
        control = RunControl(
            on_progress=lambda step, _total, _preview: steps_seen.append(step),
            should_cancel=lambda: False,
        )

        def run_bare() -> np.ndarray:
            out = bare(
                [PROMPT] * 4,
                negative_prompt=[NEGATIVE] * 4,
                height=SIDE,
                width=SIDE,
                num_inference_steps=args.steps,
                guidance_scale=GUIDANCE,
                generator=[torch.Generator("cpu").manual_seed(s) for s in range(4)],
                output_type="np",
            ).images
            return (np.asarray(out).clip(0, 1) * 255).round().astype(np.uint8)

        def run_ours() -> np.ndarray:
            return np.stack([o.image for o in engine.generate(items, control)])

        # Same settings, same pixels: otherwise the comparison means nothing.
        diff = np.abs(run_bare().astype(int) - run_ours().astype(int)).max()
        if diff > 1:
            raise SystemExit(f"pixels differ by {diff}: the two paths do not run the same thing")
        wall: dict[str, list[float]] = {"bare": [], "ours": []}
        cpu: dict[str, list[float]] = {"bare": [], "ours": []}
        for _ in range(args.repeats):  # alternate, so load drift hits both
            for key, fn in (("bare", run_bare), ("ours", run_ours)):
                start, start_cpu = time.perf_counter(), time.process_time()
                fn()
                wall[key].append(time.perf_counter() - start)
                cpu[key].append(time.process_time() - start_cpu)

    report = Report("diffusers_overhead")
    extra = {"images": 4, "steps": args.steps, "size": SIDE, "threads": args.threads}
    labels = {"bare": "bare diffusers pipeline", "ours": "imagineer DiffusersImageEngine"}
    timings = {
        (key, kind): report.add(Timing(f"{labels[key]}, {kind}", tuple(runs[key]), extra))
        for kind, runs in (("cpu time", cpu), ("wall time", wall))
        for key in ("bare", "ours")
    }
    found = report.add_ratio(timings["ours", "cpu time"], timings["bare", "cpu time"])
    report.add_ratio(timings["ours", "wall time"], timings["bare", "wall time"])
    report.finish()
    verdict = "within" if found.value <= 1.05 else "OVER"
    print(f"overhead in CPU time {100 * (found.value - 1):+.1f}% ({verdict} the 5% target)")


if __name__ == "__main__":
    main()
