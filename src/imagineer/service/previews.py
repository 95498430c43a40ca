"""Previews of a running job: a small PNG of the image in progress, kept beside its outputs."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image, PngImagePlugin

from imagineer.provenance.iptc import CREDIT_LINE, IptcTags, build_xmp

PreviewFn = Callable[[int, int, np.ndarray], None]  # (steps done, steps in all, (H, W, 3) uint8)

PREVIEW_SIDE: Final = 256  # previews larger than this are shrunk: they travel inside events
PREVIEWS_PER_CALL: Final = 4  # about this many previews per engine call, however many steps
FOLDER: Final = ".previews"
_PREVIEW_XMP: Final = build_xmp(IptcTags(credit=CREDIT_LINE)).decode("utf-8")


def preview_every(steps: int) -> int:
    """The step interval that gives about PREVIEWS_PER_CALL previews over `steps` steps."""
    return max(1, steps // PREVIEWS_PER_CALL)


def preview_file(payload: Mapping[str, Any], job_id: str, output_dir: Path) -> Path:
    """Where the preview of a job goes: in its output folder (shared by every worker process),
    under a name made from a hash of the id so no id can become a path."""
    folder = payload.get("out_dir")
    root = Path(folder) if isinstance(folder, str) and folder else output_dir
    name = hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:24]
    return root / FOLDER / f"{name}.png"


@dataclass(frozen=True)
class Preview:
    """One preview as read back: the PNG bytes and the progress it was made at."""

    png: bytes
    step: int
    total: int


class PreviewWriter:
    """Writes each preview over the last, atomically, so a reader never sees half a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, step: int, total: int, image: np.ndarray) -> None:
        picture = Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8), "RGB")
        picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))  # shrinks only, keeps the aspect
        info = PngImagePlugin.PngInfo()
        info.add_text("step", str(step))
        info.add_text("total", str(total))
        # A preview is transient and never signed, but it is labelled AI-made like any output.
        info.add_itxt("XML:com.adobe.xmp", _PREVIEW_XMP)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", pnginfo=info)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(buffer.getvalue())
        os.replace(partial, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def read_preview(path: Path) -> Preview | None:
    """The preview at `path`, or None when there is none (yet, or any more)."""
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            text = dict(getattr(image, "text", {}))
        return Preview(data, int(text.get("step", 0)), int(text.get("total", 0)))
    except (OSError, ValueError):  # gone between the check and the read, or not ours
        return None
