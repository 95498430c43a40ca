"""Writing finished outputs: file names, then watermark, IPTC/XMP, recipe and C2PA signature.

The order matters: the watermark changes pixels, the XMP and recipe are part of the file, and
the manifest signs the final bytes, so it comes last (see docs/provenance.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import numpy as np
from PIL import Image

from imagineer.media.images import save_image
from imagineer.provenance import c2pa, iptc
from imagineer.provenance import watermark as wm
from imagineer.provenance.keys import SigningIdentity
from imagineer.provenance.label import WATERMARK_OFF, write_labelled_video
from imagineer.provenance.recipe import Recipe

WATERMARK_MIN_SIDE: Final = wm.MIN_EMBED_SIDE  # 128: smaller outputs (base images) go unmarked
_SLUG_CHARS: Final = 40


@dataclass(frozen=True)
class Marking:
    """Which marks to put on outputs (Settings.watermark / Settings.sign)."""

    watermark: bool
    identity: SigningIdentity | None  # None: do not sign
    marker: wm.Watermarker | None = None  # the key's patterns, built once per process


@dataclass(frozen=True)
class WrittenFile:
    """One file written, and which marks it carries."""

    path: Path
    recipe: Recipe
    watermarked: bool
    signed: bool


def slug(text: str) -> str:
    """A short file-name-safe form of a prompt: lower case words joined by '-'."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = "-".join(words)[:_SLUG_CHARS].strip("-")
    return out or "image"


def output_stem(kind: str, text: str, seed: int, now: datetime | None = None) -> str:
    """The shared start of a batch's file names: time, kind, prompt words and seed."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    prefix = "" if kind == "imagine" else f"{kind}_"
    return f"{stamp}_{prefix}{slug(text)}_{seed}"


def unique_path(folder: Path, name: str, suffix: str = ".png") -> Path:
    """folder/name+suffix, or name-2, name-3, … when that file exists already."""
    path = folder / f"{name}{suffix}"
    n = 2
    while path.exists():
        path = folder / f"{name}-{n}{suffix}"
        n += 1
    return path


def write_output(
    image: Image.Image,
    path: Path,
    recipe: Recipe,
    marking: Marking,
    *,
    action: Literal["created", "edited"] = "created",
    parents: Sequence[Path] = (),
    mixes_user_media: bool = False,
) -> WrittenFile:
    """Write one output with every mark `marking` asks for; return what was written."""
    recipe_json = recipe.to_json()
    # 1. watermark the pixels (final-size outputs only)
    marked = marking.watermark and min(image.size) >= WATERMARK_MIN_SIDE
    reason = "" if marked else _no_watermark_reason(marking, image.size)
    if marked:
        payload = wm.payload_for_recipe(recipe_json)
        image = wm.embed(image.convert("RGB"), payload, marker=marking.marker)
    # 2. IPTC/XMP labels and the recipe go into the file, with a sidecar beside it;
    # 3. the manifest signs the final bytes before the one write
    seal = None
    if marking.identity is not None:
        seal = functools.partial(
            c2pa.sign_bytes,
            identity=marking.identity,
            action=action,
            recipe_json=recipe_json,
            model=recipe.model,
            model_hash=recipe.model_hash,
            parents=parents,
            mixes_user_media=mixes_user_media,
            watermarked=marked,
            watermark_note=reason,
        )
    tags = iptc.tags_for(model=recipe.model or recipe.engine, mixes_user_media=mixes_user_media)
    path = save_image(image, path, recipe=recipe, xmp=iptc.build_xmp(tags), seal=seal)
    return WrittenFile(path, recipe, marked, marking.identity is not None)


def write_video_output(
    frames: Sequence[np.ndarray],
    path: Path,
    recipe: Recipe,
    marking: Marking,
    *,
    fps: int = 24,
    action: Literal["created", "edited"] = "created",
    parents: Sequence[Path] = (),
    mixes_user_media: bool = False,
) -> WrittenFile:
    """Write one clip with every mark `marking` asks for (see provenance.label); MP4 is best."""
    written = write_labelled_video(
        frames,
        path,
        recipe,
        identity=marking.identity,
        watermark=marking.watermark,
        fps=fps,
        action=action,
        parents=parents,
        mixes_user_media=mixes_user_media,
        marker=marking.marker,
    )
    return WrittenFile(written.path, recipe, written.watermarked, written.signed)


def _no_watermark_reason(marking: Marking, size: tuple[int, int]) -> str:
    if not marking.watermark:
        return WATERMARK_OFF
    return f"{size[0]}x{size[1]} is under {WATERMARK_MIN_SIDE} px a side (a draft or base image)"
