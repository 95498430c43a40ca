"""Benchmark --sref on the embedded model: does a style reference move the evaluated style, and
does the prompt's subject survive?

Run: python bench/bench_sref.py [--seeds 8] [--steps 8] [--device cpu] [--threads 1]
(prints a table, writes bench/results/sref.json)

Prompt: "a red hot air balloon over the hills" (no style in words). References: the world's
own render of one scene (the sea at dusk with two white boats) in each style. Each row runs the
same seeds without and with the reference at --sw 25, 100 and 300, at 256x256 (sampled at
32x32), and the world evaluator counts the images judged in the reference's style, at the
reference's time of day, and still showing a balloon.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from _harness import RESULTS_DIR, Report, Timing
from imagineer.engines.base import Capability, GenerationInput, RunControl, StyleReference
from imagineer.engines.embedded.engine import EmbeddedEngine, weights_available
from imagineer.provenance.recipe import content_hash
from imagineer.world.evaluate import Evaluator
from imagineer.world.render import render
from imagineer.world.scene import STYLES, ObjectGroup, Scene

PROMPT = "a red hot air balloon over the hills"
WEIGHTS = (0.25, 1.0, 3.0)  # --sw 25, 100, 300


def reference(style: str) -> StyleReference:
    boats = ObjectGroup("boat", "white", 2, "left")
    scene = Scene(time="dusk", landscape="sea", objects=boats, style=style, seed=7)
    image = render(scene, 128, 128)
    return StyleReference(image, content_hash(image.tobytes()))


def generate(
    engine: EmbeddedEngine, seeds: range, steps: int, refs: tuple[StyleReference, ...], sw: float
) -> tuple[list[np.ndarray], float]:
    """The images of one row (all seeds in one batch) and the seconds they took."""
    items = [
        GenerationInput(
            Capability.TEXT_TO_IMAGE,
            PROMPT,
            width=256,
            height=256,
            seed=s,
            steps=steps,
            style_refs=refs,
            style_weight=sw,
        )
        for s in seeds
    ]
    started = time.perf_counter()
    images = [out.image for out in engine.generate(items, RunControl())]
    return images, time.perf_counter() - started


def counts(judge: Evaluator, images: list[np.ndarray], style: str) -> dict[str, int]:
    """Images judged in `style`, at dusk, and with a balloon."""
    found = judge.predict(images)
    return {
        "style": sum(str(p.label("style")) == style for p in found),
        "dusk": sum(p.label("time") == "dusk" for p in found),
        "balloon": sum(p.label("object_kind") == "balloon" for p in found),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="images per row")
    parser.add_argument("--steps", type=int, default=8, help="sampling steps")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    why_not = weights_available()
    if why_not is not None:
        sys.exit(f"cannot run the --sref benchmark: embedded model weights are {why_not}")
    engine = EmbeddedEngine.load(device=args.device)
    judge = Evaluator.load(device=args.device)
    seeds = range(args.seeds)
    report = Report("sref")
    report.context.update(
        prompt=PROMPT, seeds=args.seeds, steps=args.steps, engine_model_hash=engine.info.model_hash
    )
    plain, plain_s = generate(engine, seeds, args.steps, (), 1.0)
    print(
        f"{'reference':10s} "
        + " | ".join(["without"] + [f"--sw {round(w * 100)}" for w in WEIGHTS])
    )
    for style in STYLES:
        row = {f"plain_{k}": v for k, v in counts(judge, plain, style).items()}
        times = [plain_s]
        for sw in WEIGHTS:
            images, seconds = generate(engine, seeds, args.steps, (reference(style),), sw)
            row |= {f"sw{round(sw * 100)}_{k}": v for k, v in counts(judge, images, style).items()}
            times.append(seconds)
        report.add(Timing(style, tuple(times), row))
        cells = [
            "/".join(str(row[f"{prefix}_{k}"]) for k in ("style", "dusk", "balloon"))
            for prefix in ["plain"] + [f"sw{round(w * 100)}" for w in WEIGHTS]
        ]
        print(f"{style:10s} " + " | ".join(cells), flush=True)
    print(f"(cells: images of {args.seeds} judged in the style / at dusk / with a balloon)")
    print(f"results: {report.write(RESULTS_DIR)}")


if __name__ == "__main__":
    main()
