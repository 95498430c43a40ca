"""Style passes run on the downsampled render: neon, pastel, noir, watercolor, pixel art."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from imagineer.world.scene import Scene

PIXEL_ART_COLOURS = 16
_PAPER = np.array((250, 244, 230), dtype=np.float32)


def apply_style(image: Image.Image, scene: Scene, width: int, height: int) -> Image.Image:
    """Restyle `image` (drawn for `scene`) and return it at (width, height)."""
    if scene.style == "pixel_art":
        return _pixel_art(image, width, height)
    if scene.style == "neon":
        return _neon(image, width)
    if scene.style == "pastel":
        return _pastel(image)
    if scene.style == "noir":
        return _noir(image, scene.seed)
    if scene.style == "watercolor":
        return _watercolor(image, scene.seed, width)
    return image


def _pixel_art(image: Image.Image, width: int, height: int) -> Image.Image:
    small = image.quantize(
        PIXEL_ART_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    return small.convert("RGB").resize((width, height), Image.Resampling.NEAREST)


def _neon(image: Image.Image, width: int) -> Image.Image:
    vivid = ImageEnhance.Color(image).enhance(1.9)
    edges = np.asarray(vivid.filter(ImageFilter.FIND_EDGES), dtype=np.float32)
    glow = np.asarray(
        Image.fromarray(edges.astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(max(0.7, width / 120))
        ),
        dtype=np.float32,
    )
    base = np.asarray(vivid, dtype=np.float32)
    # darken the flat areas, keep hue, and let the edges glow on top
    out = base * 0.42 + edges * 1.1 + glow * 1.6
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _pastel(image: Image.Image) -> Image.Image:
    soft = ImageEnhance.Color(image).enhance(0.55)
    arr = np.asarray(soft, dtype=np.float32)
    out = arr * 0.62 + 255.0 * 0.38
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _noir(image: Image.Image, seed: int) -> Image.Image:
    grey = ImageOps.autocontrast(image.convert("L"), cutoff=2)
    arr = np.asarray(grey, dtype=np.float32) / 255.0
    arr = arr * arr * (3 - 2 * arr)  # smoothstep: harder blacks and whites
    h, w = arr.shape
    yy, xx = np.mgrid[0:h, 0:w]
    dist = ((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2
    vignette = 1.0 - 0.9 * dist
    grain = np.random.default_rng(seed + 7).normal(0.0, 0.025, arr.shape)
    out = np.clip((arr * vignette + grain) * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(out).convert("RGB")


def _paper(seed: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 11)
    coarse = Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8))
    blotch = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    fine = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
    return (1.0 + (blotch / 255.0 - 0.5) * 0.14 + fine * 0.025)[:, :, None]


def _watercolor(image: Image.Image, seed: int, width: int) -> Image.Image:
    bled = image.filter(ImageFilter.GaussianBlur(max(0.45, width / 220)))
    soft = np.asarray(ImageEnhance.Color(bled).enhance(0.9), dtype=np.float32)
    edges = np.asarray(bled.filter(ImageFilter.FIND_EDGES).convert("L"), dtype=np.float32)
    # pigment pools at edges: darken them a little, wash the rest towards the paper
    out = soft - edges[:, :, None] * 0.35
    out = out * 0.82 + _PAPER * 0.18
    out = out * _paper(seed, image.width, image.height)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
