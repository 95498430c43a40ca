"""Contact sheets of world renders: the same scenes large and at training size, for eyeballing.

Regenerate the docs image with `python -m imagineer.world.sheet docs/world-samples.png`.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import numpy as np
from PIL import Image

from imagineer.world.render import render
from imagineer.world.scene import STYLES, Scene, sample_scene

PAD = 4


def contact_sheet(
    scenes: Sequence[Scene], large: int = 160, small: int = 32, cols: int = 6
) -> Image.Image:
    """Each scene at `large` px, and below the same rows at `small` px blown up (nearest)."""
    if not scenes or cols < 1:
        raise ValueError(f"need at least one scene and cols >= 1 (got {len(scenes)}, {cols})")
    rows = (len(scenes) + cols - 1) // cols
    cell = large + PAD
    sheet = Image.new("RGB", (cols * cell + PAD, 2 * rows * cell + PAD), (255, 255, 255))
    for i, scene in enumerate(scenes):
        x, y = PAD + (i % cols) * cell, PAD + (i // cols) * cell
        sheet.paste(Image.fromarray(render(scene, large, large)), (x, y))
        tiny = Image.fromarray(render(scene, small, small))
        sheet.paste(tiny.resize((large, large), Image.Resampling.NEAREST), (x, y + rows * cell))
    return sheet


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="PNG file to write")
    parser.add_argument("--count", type=int, default=12, help="number of scenes")
    parser.add_argument("--seed", type=int, default=5, help="seed of the scene sampler")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    # cycle the styles so one sheet shows them all (sampling gives "photo" half the time)
    scenes = [
        dataclasses.replace(sample_scene(rng), style=STYLES[i % len(STYLES)])
        for i in range(args.count)
    ]
    sheet = contact_sheet(scenes)
    # an adaptive palette keeps the docs image small; the renders themselves are full RGB
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)


if __name__ == "__main__":
    main()
