"""Label a clip as AI-made: watermark every frame, encode, add XMP, sign a C2PA manifest.

Video code calls one of these:

- `write_labelled_video(frames, path, recipe, identity=...)` when it holds the frames: they are
  marked before the only encode, so no quality is lost to a second one. It is the three steps
  below in one call.
- `mark_clip(frames, recipe_json)` then, per format written, `seal_video(path, recipe, ...)`:
  for code that writes one clip in several formats from the same marked frames.
- `label_video(path, recipe, identity=...)` for a clip already on disk: it is decoded, marked
  and re-encoded in place (crf 18 by default, so the extra generation costs little), then signed.

They return what the file carries and why any mark is missing. MP4 gets every mark (the XMP
packet as an ISO `uuid` box); GIF gets the watermark and a manifest but no XMP; WebM cannot
carry a C2PA manifest at all (the C2PA SDK does not support it), so a WebM clip is watermarked
and has its recipe, and `note` says it is unsigned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image

from imagineer.provenance import c2pa, iptc
from imagineer.provenance import watermark as wm
from imagineer.provenance.keys import SigningIdentity
from imagineer.provenance.recipe import Recipe

WATERMARK_OFF: Final = "turned off in settings"
WEBM_UNSIGNED: Final = "WebM cannot carry a C2PA manifest: write MP4 or GIF for a signed clip"


@dataclass(frozen=True)
class LabelledFile:
    """One clip written or relabelled, and which marks it carries."""

    path: Path
    watermarked: bool
    signed: bool
    xmp: bool  # an IPTC/XMP packet is in the file
    note: str = ""  # why a mark is missing; "" when all are there


@dataclass(frozen=True)
class MarkedClip:
    """Frames after `mark_clip`: marked, or unmarked with the reason."""

    frames: list[np.ndarray]  # (H, W, 3) uint8 each
    watermarked: bool
    reason: str  # why the frames are not marked; "" when they are


def mark_clip(
    frames: Iterable[np.ndarray],
    recipe_json: str,
    *,
    watermark: bool = True,
    marker: wm.Watermarker | None = None,
) -> MarkedClip:
    """Every frame marked with the recipe's payload (one pattern for the whole clip).

    Frames under 128 px a side, and `watermark=False` (the setting), stay as they are.
    """
    clip = [np.asarray(frame) for frame in frames]
    if not clip:
        raise ValueError("frames is empty: a clip needs at least one frame")
    if not watermark:
        return MarkedClip(clip, False, WATERMARK_OFF)
    height, width = clip[0].shape[:2]
    if min(height, width) < wm.MIN_EMBED_SIDE:
        reason = f"frames are {width}x{height}, under {wm.MIN_EMBED_SIDE} px a side"
        return MarkedClip(clip, False, reason)
    payload = wm.payload_for_recipe(recipe_json)
    images = [Image.fromarray(np.ascontiguousarray(frame)) for frame in clip]
    marked = wm.embed_frames(images, payload, marker=marker)
    return MarkedClip([np.asarray(frame) for frame in marked], True, "")


def seal_video(
    path: Path,
    recipe: Recipe,
    *,
    identity: SigningIdentity | None,
    watermarked: bool,
    watermark_note: str = "",
    action: c2pa.Action = "created",
    parents: Sequence[Path] = (),
    mixes_user_media: bool = False,
) -> LabelledFile:
    """Add the XMP labels (MP4) and sign (MP4, GIF) a clip whose frames are final."""
    path = Path(path)
    suffix = path.suffix.lower()
    has_xmp = suffix == ".mp4"
    if has_xmp:
        tags = iptc.tags_for(model=recipe.model or recipe.engine, mixes_user_media=mixes_user_media)
        iptc.append_mp4_xmp(path, iptc.build_xmp(tags))
    notes = [] if watermarked else [f"no watermark: {watermark_note or 'not given'}"]
    signed = identity is not None and suffix != ".webm"
    if identity is None:
        notes.append("unsigned: signing is turned off")
    elif not signed:
        notes.append(WEBM_UNSIGNED)
    else:
        c2pa.sign_file(
            path,
            path,
            identity=identity,
            action=action,
            recipe_json=recipe.to_json(),
            model=recipe.model,
            model_hash=recipe.model_hash,
            parents=parents,
            mixes_user_media=mixes_user_media,
            watermarked=watermarked,
            watermark_note=watermark_note,
        )
    return LabelledFile(path, watermarked, signed, has_xmp, "; ".join(notes))


def write_labelled_video(
    frames: Iterable[np.ndarray],
    path: Path,
    recipe: Recipe,
    *,
    identity: SigningIdentity | None,
    watermark: bool = True,
    fps: int = 24,
    fmt: str | None = None,
    crf: int = 23,
    action: c2pa.Action = "created",
    parents: Sequence[Path] = (),
    mixes_user_media: bool = False,
    marker: wm.Watermarker | None = None,
) -> LabelledFile:
    """Mark (H, W, 3) uint8 frames, encode them to `path`, add XMP and sign; see the module doc.

    `identity=None` skips the manifest; `watermark=False` leaves the pixels alone and the
    manifest records that it was turned off. An animation or other clip made from a file is
    `action="edited"` with `parents=[that file]` (`mixes_user_media` when it was the user's).
    """
    from imagineer.media.video import resolve_video_path, write_video

    # 1. check inputs before any work
    path, chosen = resolve_video_path(Path(path), fmt)
    if identity is not None and chosen.name != "webm":
        c2pa.check_action(action, parents)
    recipe_json = recipe.to_json()
    # 2. watermark every frame, 3. encode (recipe in the container + sidecar), 4. XMP + sign
    clip = mark_clip(frames, recipe_json, watermark=watermark, marker=marker)
    write_video(clip.frames, path, fps=fps, fmt=chosen.name, crf=crf, recipe=recipe)
    return seal_video(
        path,
        recipe,
        identity=identity,
        watermarked=clip.watermarked,
        watermark_note=clip.reason,
        action=action,
        parents=parents,
        mixes_user_media=mixes_user_media,
    )


def label_video(
    path: Path,
    recipe: Recipe,
    *,
    identity: SigningIdentity | None,
    watermark: bool = True,
    fps: int | None = None,
    crf: int = 18,
    action: c2pa.Action = "created",
    parents: Sequence[Path] = (),
    mixes_user_media: bool = False,
    marker: wm.Watermarker | None = None,
) -> LabelledFile:
    """Label a clip already written at `path`: decode, mark, re-encode in place, sign.

    `fps` defaults to the rate the file reports (GIF rounds to hundredths of a second, so pass
    the rate it was made at). A clip that already carries a manifest is refused: label the
    frames before signing, or make an edit of it instead.
    """
    from imagineer.media.video import read_video

    path = Path(path)
    if c2pa.read_manifest(path).present:
        raise c2pa.ProvenanceError(
            f"{path.name} is signed already: relabelling would break its manifest; "
            "write a new file as an edit of it instead"
        )
    info = read_video(path)
    rate = fps if fps is not None else max(1, round(info.fps))
    return write_labelled_video(
        info.frames,
        path,
        recipe,
        identity=identity,
        watermark=watermark,
        fps=rate,
        fmt=path.suffix.lstrip(".") or None,
        crf=crf,
        action=action,
        parents=parents,
        mixes_user_media=mixes_user_media,
        marker=marker,
    )
