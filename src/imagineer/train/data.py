"""Training data for the embedded model: world renders, captions and cached text states on disk."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from imagineer.engines.embedded.text import HIDDEN, MAX_TOKENS, TextEncoder, TextStates

# (width, height) buckets: mostly square, some landscape and portrait so --ar has been seen.
DEFAULT_BUCKETS: tuple[tuple[int, int], ...] = ((32, 32), (40, 24), (24, 40))
BUCKET_SHARE: tuple[float, ...] = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class DataSpec:
    """How a data folder was made; stored as spec.json beside the arrays."""

    count: int  # scenes in all buckets
    seed: int
    buckets: tuple[tuple[int, int], ...] = DEFAULT_BUCKETS
    shares: tuple[float, ...] = BUCKET_SHARE
    split: str = "train"


def _render_chunk(args: tuple[int, int, int, int, str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Render `n` scenes of one bucket from a seed (runs in a worker process)."""
    from imagineer.world import caption, render, sample_scene

    seed, n, width, height, split = args
    rng = np.random.default_rng(seed)
    images = np.empty((n, height, width, 3), dtype=np.uint8)
    captions: list[str] = []
    scenes: list[str] = []
    for i in range(n):
        scene = sample_scene(rng, split=split)
        images[i] = render(scene, width, height)
        captions.append(caption(scene, rng).text)
        scenes.append(json.dumps(scene.to_dict()))
    return images, captions, scenes


def build(
    out: Path, spec: DataSpec, *, workers: int = 2, log: Callable[[str], None] = print
) -> None:
    """Render, caption and encode `spec.count` scenes into `out` (resumable per bucket)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec.__dict__))
    encoder: TextEncoder | None = None
    for b, ((width, height), share) in enumerate(zip(spec.buckets, spec.shares, strict=True)):
        folder = out / f"bucket{b}_{width}x{height}"
        if (folder / "done").exists():
            continue
        folder.mkdir(exist_ok=True)
        n = round(spec.count * share)
        chunk = 500
        jobs = [
            (spec.seed * 1000 + b * 100 + i, min(chunk, n - i * chunk), width, height, spec.split)
            for i in range((n + chunk - 1) // chunk)
        ]
        log(f"rendering {n} scenes at {width}x{height}")
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render_chunk, jobs))
        images = np.concatenate([p[0] for p in parts])
        captions = [c for p in parts for c in p[1]]
        scenes = [s for p in parts for s in p[2]]
        np.save(folder / "images.npy", images)
        (folder / "captions.json").write_text(json.dumps(captions))
        (folder / "scenes.jsonl").write_text("\n".join(scenes) + "\n")
        encoder = encoder or TextEncoder("cpu")
        log(f"encoding {len(captions)} captions")
        _encode_to(folder, captions, encoder)
        (folder / "done").write_text("ok")
    encoder = encoder or TextEncoder("cpu")
    null = encoder.encode([""])
    torch.save({"tokens": null.tokens[0], "mask": null.mask[0]}, out / "null_text.pt")


def _encode_to(folder: Path, captions: list[str], encoder: TextEncoder) -> None:
    tokens = np.zeros((len(captions), MAX_TOKENS, HIDDEN), dtype=np.float16)
    lengths = np.zeros(len(captions), dtype=np.int16)
    for start in range(0, len(captions), 256):
        states = encoder.encode(captions[start : start + 256])
        n = states.tokens.shape[1]
        tokens[start : start + len(states.tokens), :n] = states.tokens.numpy().astype(np.float16)
        lengths[start : start + len(states.tokens)] = states.mask.sum(1).numpy()
        encoder._cache.clear()  # every caption is seen once here
    np.save(folder / "tokens.npy", tokens)
    np.save(folder / "lengths.npy", lengths)


def _render_scenes(args: tuple[list[str], int, int]) -> np.ndarray:
    from imagineer.world import Scene, render

    lines, width, height = args
    return np.stack([render(Scene.from_dict(json.loads(line)), width, height) for line in lines])


# A pixel belongs to the objects when drawing them moved any channel by more than this (of 255).
MASK_THRESHOLD = 6


def _mask_scenes(args: tuple[list[str], np.ndarray]) -> np.ndarray:
    """Object masks: where each render differs from the same scene drawn without its objects."""
    from dataclasses import replace

    from imagineer.world import Scene, render

    lines, images = args
    height, width = images.shape[1:3]
    masks = np.zeros(images.shape[:3], np.uint8)
    for i, line in enumerate(lines):
        scene = Scene.from_dict(json.loads(line))
        if scene.objects is None:
            continue
        full = images[i]
        if scene.style == "noir":  # noir stretches the contrast of the whole frame: draw in photo
            scene = replace(scene, style="photo")
            full = render(scene, width, height)
        bare = render(replace(scene, objects=None), width, height).astype(np.int16)
        masks[i] = np.abs(full.astype(np.int16) - bare).max(axis=2) > MASK_THRESHOLD
    return masks


def object_masks(out: Path, *, workers: int = 2, log: Callable[[str], None] = print) -> None:
    """Write masks.npy (N, H, W) per bucket: the pixels its objects cover (for --object-weight)."""
    for folder in sorted(out.glob("bucket*")):
        lines = (folder / "scenes.jsonl").read_text().splitlines()
        images = np.load(folder / "images.npy")
        chunks = [(lines[i : i + 500], images[i : i + 500]) for i in range(0, len(lines), 500)]
        log(f"masking the objects of {len(lines)} scenes in {folder.name}")
        with ProcessPoolExecutor(workers) as pool:
            masks = np.concatenate(list(pool.map(_mask_scenes, chunks)))
        np.save(folder / "masks.npy", masks)
        log(f"  objects cover {masks.mean():.1%} of the pixels")


def rerender(out: Path, *, workers: int = 2, log: Callable[[str], None] = print) -> None:
    """Redraw every bucket's images from its stored scenes after the renderer changed.

    Captions and their cached text states depend only on the scenes, so they stay valid.
    """
    for folder in sorted(out.glob("bucket*")):
        w, h = (int(v) for v in folder.name.split("_")[1].split("x"))
        lines = (folder / "scenes.jsonl").read_text().splitlines()
        chunks = [(lines[i : i + 500], w, h) for i in range(0, len(lines), 500)]
        log(f"re-rendering {len(lines)} scenes at {w}x{h}")
        with ProcessPoolExecutor(workers) as pool:
            images = np.concatenate(list(pool.map(_render_scenes, chunks)))
        np.save(folder / "images.npy", images)


@dataclass
class Bucket:
    """One size bucket held in memory as tensors."""

    width: int
    height: int
    images: torch.Tensor  # (N, 3, H, W) uint8
    tokens: torch.Tensor  # (N, L, 384) float16
    lengths: torch.Tensor  # (N,) int64
    masks: torch.Tensor | None = None  # (N, H, W) uint8: object pixels, when masks.npy exists

    def object_mask(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) float: 1 where the chosen images' objects are."""
        if self.masks is None:
            raise FileNotFoundError(
                f"the {self.width}x{self.height} bucket has no object masks: "
                "run `imagineer train masks` on the data folder first"
            )
        return self.masks[idx, None].float()

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, TextStates]:
        x = self.images[idx].float() / 127.5 - 1.0  # (B, 3, H, W) in [-1, 1]
        lengths = self.lengths[idx]
        width = int(lengths.max())
        mask = torch.arange(width)[None, :] < lengths[:, None]  # (B, L)
        return x, TextStates(self.tokens[idx, :width].float(), mask)


def load(folder: Path) -> tuple[list[Bucket], TextStates]:
    """Every bucket of a built data folder plus the empty-prompt states (for CFG dropout)."""
    buckets = []
    for sub in sorted(folder.glob("bucket*")):
        if not (sub / "done").exists():
            continue
        w, h = (int(v) for v in sub.name.split("_")[1].split("x"))
        images = torch.from_numpy(np.load(sub / "images.npy")).permute(0, 3, 1, 2).contiguous()
        tokens = torch.from_numpy(np.load(sub / "tokens.npy"))
        lengths = torch.from_numpy(np.load(sub / "lengths.npy").astype(np.int64))
        masks = None
        if (sub / "masks.npy").exists():
            masks = torch.from_numpy(np.load(sub / "masks.npy"))
        buckets.append(Bucket(w, h, images, tokens, lengths, masks))
    if not buckets:
        raise FileNotFoundError(
            f"no finished data buckets in {folder}: run `imagineer train data` first"
        )
    null = torch.load(folder / "null_text.pt")
    return buckets, TextStates(null["tokens"][None], null["mask"][None])


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
