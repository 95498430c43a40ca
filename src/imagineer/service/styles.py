"""Style references (--sref): the local image files of a request read, hashed and checked
before any compute, so engines get pixels and recipes get the files' hashes."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from imagineer.engines.base import StyleReference
from imagineer.media.images import image_to_array
from imagineer.prompts import Request
from imagineer.provenance.recipe import content_hash
from imagineer.service.plan import UnsupportedRequest, style_problems

MAX_SIDE = 1024  # larger references are shrunk: engines read them at 32 to 336 px
MAX_BYTES = 64 * 1024 * 1024


def load_styles(request: Request, *, expected: Sequence[str] = ()) -> tuple[StyleReference, ...]:
    """The request's --sref images, in prompt order; `expected`: the sha256 of each file that
    a recipe recorded (a re-render refuses files that changed since)."""
    refs = request.params.sref
    problems = style_problems(request)
    if problems:
        raise UnsupportedRequest("; ".join(problems))
    if expected and len(expected) != len(refs):
        raise UnsupportedRequest(
            f"the recipe records {len(expected)} style references but its prompt has {len(refs)}"
        )
    styles = []
    for i, ref in enumerate(refs):
        data = _read(ref.text)
        digest = content_hash(data)
        if expected and expected[i] != digest:
            raise UnsupportedRequest(
                f"--sref {ref.text} has changed since the recipe was made (sha256 "
                f"{expected[i][:12]}… then, {digest[:12]}… now): restore it to re-render"
            )
        styles.append(StyleReference(_pixels(ref.text, data), digest, ref.weight))
    return tuple(styles)


def _read(text: str) -> bytes:
    path = Path(text).expanduser()
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UnsupportedRequest(f"--sref {text}: {size} bytes; the limit is {MAX_BYTES}")
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UnsupportedRequest(f"--sref {text}: no such image file") from None
    except PermissionError:
        raise UnsupportedRequest(f"--sref {text}: the file cannot be read") from None


def _pixels(text: str, data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            return image_to_array(image)  # (H, W, 3) uint8
    except (UnidentifiedImageError, OSError, ValueError):
        raise UnsupportedRequest(f"--sref {text}: not a readable image") from None
