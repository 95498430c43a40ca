"""Speed of the embedded model: a 2x2 grid at the base size by step count, and the full path.

Run: python bench/bench_embedded.py [--threads 2]
Prints a table and writes bench/results/embedded.json. Also checks that the same seed gives
identical pixels (the run fails loudly if not).
"""

from __future__ import annotations

import argparse

import torch

from _harness import Report, time_call
from imagineer.engines.base import Capability, GenerationInput, RunControl
from imagineer.engines.embedded.engine import EmbeddedEngine

PROMPT = "a futuristic city at sunset with flying cars"


def grid(steps: int, size: int = 256) -> list[GenerationInput]:
    return [
        GenerationInput(
            capability=Capability.TEXT_TO_IMAGE,
            prompt=PROMPT,
            width=size,
            height=size,
            seed=seed,
            steps=steps,
            guidance=5.0,
        )
        for seed in range(4)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    engine = EmbeddedEngine.load()
    control = RunControl()
    report = Report("embedded")
    timings = {}
    for steps in (4, 8, 12, 20):
        batch = grid(steps)
        timings[steps] = report.add(
            time_call(
                f"2x2 grid at base size (32x32), {steps} steps, CFG",
                lambda b=batch: engine.sample_base(b, control),
                repeats=args.repeats,
                extra={"steps": steps},
            )
        )
    default = engine.info.default_steps
    full = report.add(
        time_call(
            f"2x2 grid, {default} steps + 8x learned upscale to 256x256",
            lambda: engine.generate(grid(default), control),
            repeats=args.repeats,
        )
    )
    report.add_ratio(full, timings[12])
    first = engine.sample_base(grid(default), control)
    second = engine.sample_base(grid(default), control)
    if not torch.equal(first, second):
        raise SystemExit("same seeds gave different pixels: determinism is broken")
    report.finish()


if __name__ == "__main__":
    main()
