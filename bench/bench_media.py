"""Benchmark media output: PNG vs JPEG vs WebP saves (1024²) and MP4/WebM/GIF encodes (48 × 256²).

Run: python bench/bench_media.py   (prints a table, writes bench/results/media.json)

Each save goes through `save_image` with a recipe, so it includes the metadata, the sidecar
and the atomic rename with fsync; each encode goes through `write_video`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from _harness import Report, Timing, time_call
from imagineer.media.images import save_image
from imagineer.media.video import write_video
from imagineer.provenance.recipe import Recipe, content_hash


def scene(size: int, t: int) -> np.ndarray:
    """A deterministic frame with smooth gradients, edges and a little noise, like renders have."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size  # (H, W) each
    sky = np.stack([0.9 - 0.5 * y, 0.5 + 0.3 * x, 0.7 + 0.2 * np.sin(6 * x + t / 8)], axis=-1)
    cx, cy, r = 0.3 + 0.4 * (t % 48) / 48, 0.6, 0.12
    disc = ((x - cx) ** 2 + (y - cy) ** 2) < r**2
    sky[disc] = (0.95, 0.35, 0.2)
    sky[y > 0.8] = (0.25, 0.45, 0.2)
    noise = np.random.default_rng(0).normal(0, 0.02, sky.shape)  # fixed texture, not flicker
    return (np.clip(sky + noise, 0, 1) * 255).astype(np.uint8)  # (H, W, 3)


def make_recipe(size: int) -> Recipe:
    return Recipe(
        prompt="a futuristic city at sunset with flying cars --ar 1:1",
        kind="imagine",
        engine="embedded",
        model="bench",
        model_hash=content_hash(b"bench"),
        seed=1,
        steps=20,
        guidance=5.0,
        width=size,
        height=size,
    )


def bench_images(report: Report, out: Path, repeats: int) -> None:
    image = Image.fromarray(scene(1024, 0))
    recipe = make_recipe(1024)
    done: dict[str, Timing] = {}
    for fmt in ("png", "jpeg", "webp"):
        path = out / f"still.{fmt}"
        timing = time_call(
            f"save {fmt} 1024²",
            functools.partial(save_image, image, path, recipe=recipe, fmt=fmt),
            warmup=1,
            repeats=repeats,
        )
        done[fmt] = report.add(_with_size(timing, path))
    report.add_ratio(done["png"], done["jpeg"])
    report.add_ratio(done["webp"], done["jpeg"])


def bench_video(report: Report, out: Path, repeats: int) -> None:
    frames = [scene(256, t) for t in range(48)]
    done: dict[str, Timing] = {}
    for fmt in ("mp4", "webm", "gif"):
        path = out / f"clip.{fmt}"
        timing = time_call(
            f"encode {fmt} 48×256²",
            functools.partial(write_video, frames, path, fps=24, fmt=fmt),
            warmup=1,
            repeats=repeats,
        )
        done[fmt] = report.add(_with_size(timing, path))
    report.add_ratio(done["webm"], done["mp4"])
    report.add_ratio(done["gif"], done["mp4"])


def _with_size(timing: Timing, path: Path) -> Timing:
    return dataclasses.replace(timing, extra={"kB": round(path.stat().st_size / 1e3, 1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant")
    parser.add_argument("--plain", action="store_true", help="plain text table instead of rich")
    args = parser.parse_args()
    report = Report("media")
    with tempfile.TemporaryDirectory() as tmp:
        bench_images(report, Path(tmp), args.repeats)
        bench_video(report, Path(tmp), args.repeats)
    report.finish(plain=args.plain)


if __name__ == "__main__":
    main()
