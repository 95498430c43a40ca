"""`imagineer verify FILE`: read every mark an output carries and say in one line what it proves.

Checks, strongest first: the C2PA manifest (signature, content hash, trust), the invisible
watermark in the pixels (frames of a clip via PyAV), the IPTC/XMP labels and the recipe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from PIL import Image, ImageSequence, UnidentifiedImageError

from imagineer.provenance import watermark
from imagineer.provenance.c2pa import ManifestReport, read_manifest
from imagineer.provenance.iptc import COMPOSITE_WITH_TRAINED, IptcTags, read_xmp

Finding: TypeAlias = Literal[
    "manifest_valid",
    "edited_after_signing",
    "manifest_invalid",
    "watermark_only",
    "labels_only",
    "no_marks",
]
VIDEO_SUFFIXES: Final = frozenset({".mp4", ".webm", ".mov", ".mkv"})
MAX_VIDEO_FRAMES: Final = 16  # frames read for the watermark vote, spread over the clip
MAX_DECODED: Final = 480  # decode at most this many frames (20 s at 24 fps)


@dataclass(frozen=True)
class Verdict:
    """What `verify` concluded about one file, with the evidence behind it."""

    summary: str  # one line for people
    finding: Finding  # the same, for programs
    path: str
    manifest: ManifestReport
    xmp: IptcTags | None
    watermark: watermark.WatermarkReading | None
    watermark_note: str  # why no watermark reading was made, when none was
    watermark_matches_recipe: bool | None  # the payload equals the one the recipe derives
    recipe_json: str | None
    recipe_source: Literal["manifest", "file", "none"]

    @property
    def ai_generated(self) -> bool:
        return self.finding in ("manifest_valid", "watermark_only", "edited_after_signing") or (
            self.xmp is not None and self.xmp.ai_generated
        )

    def details(self) -> list[str]:
        """Human-readable evidence lines, one per mark."""
        m = self.manifest
        lines = [f"file: {self.path}"]
        if m.present:
            lines.append(
                f"manifest: {m.validation_state}; signer {m.signer or 'unknown'}"
                f"{' (not in a trust list)' if m.untrusted_signer else ''}; "
                f"actions {', '.join(m.actions) or 'none'}; source {m.digital_source_type}"
            )
            if m.failure_codes:
                lines.append(f"manifest failures: {', '.join(m.failure_codes)}")
            lines += [f"ingredient: {i.relationship} {i.title}" for i in m.ingredients]
            if m.watermarked is False:
                lines.append(f"manifest says: no watermark ({m.watermark_note or 'no reason'})")
        else:
            lines.append("manifest: none")
        lines.append(_watermark_line(self.watermark, self.watermark_note))
        lines.append(
            f"IPTC/XMP: {self.xmp.digital_source_type}, credit {self.xmp.credit!r}"
            if self.xmp
            else "IPTC/XMP: none"
        )
        lines.append(f"recipe: from {self.recipe_source}" if self.recipe_json else "recipe: none")
        return lines

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ai_generated"] = self.ai_generated
        data["details"] = self.details()
        return data


def verify(path: Path, *, trust_anchors: bytes | Path | None = None) -> Verdict:
    """Read the manifest, watermark, IPTC/XMP and recipe of `path` and judge them together."""
    # 1. check inputs
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    anchors = Path(trust_anchors).read_bytes() if isinstance(trust_anchors, Path) else trust_anchors
    # 2. read each mark
    manifest = read_manifest(path, trust_anchors=anchors)
    xmp = read_xmp(path)
    recipe_json, recipe_source = _recipe(path, manifest)
    expected = manifest.watermark_payload
    if expected is None and recipe_json is not None:
        expected = watermark.payload_for_recipe(recipe_json)
    reading, note = _read_watermark(path, expected)
    matches = None if reading is None or expected is None else reading.matches(expected)
    # 3. judge
    finding, summary = _judge(manifest, reading, xmp)
    return Verdict(
        summary=summary,
        finding=finding,
        path=str(path),
        manifest=manifest,
        xmp=xmp,
        watermark=reading,
        watermark_note=note,
        watermark_matches_recipe=matches,
        recipe_json=recipe_json,
        recipe_source=recipe_source,
    )


def _judge(
    manifest: ManifestReport, reading: watermark.WatermarkReading | None, xmp: IptcTags | None
) -> tuple[Finding, str]:
    marked = reading is not None and reading.found
    mark_note = "; watermark found" if marked else ""
    if manifest.present and manifest.valid:
        what = (
            "AI-edited (with user media)"
            if manifest.digital_source_type == COMPOSITE_WITH_TRAINED
            else "AI-generated"
        )
        who = manifest.claim_generator.split(" ")[0] or "an unknown tool"
        trust = (
            "self-signed: signer not in a trust list"
            if manifest.untrusted_signer
            else "signer trusted"
            if manifest.validation_state == "Trusted"
            else "signer not checked against a trust list"
        )
        return (
            "manifest_valid",
            f"{what} by {who}, manifest valid ({trust}){_mark_clause(manifest, marked)}",
        )
    if manifest.present and manifest.content_changed:
        return (
            "edited_after_signing",
            f"edited after signing: the pixels no longer match{mark_note}",
        )
    if manifest.present:
        codes = ", ".join(manifest.failure_codes) or manifest.error or "unknown failure"
        return "manifest_invalid", f"manifest invalid ({codes}){mark_note}"
    if marked and manifest.error is not None:  # a format with no place for a manifest
        return "watermark_only", f"watermark found; {_no_manifest_reason(manifest.error)}"
    if marked:
        return "watermark_only", "manifest stripped but watermark found"
    if xmp is not None and xmp.ai_generated:
        return "labels_only", "no manifest or watermark; IPTC/XMP labels say AI-made (unsigned)"
    if manifest.error is not None and "cannot carry" in manifest.error:
        return "no_marks", f"no marks found; {_no_manifest_reason(manifest.error)}"
    return "no_marks", "no marks found"


def _mark_clause(manifest: ManifestReport, marked: bool) -> str:
    """What a valid manifest's watermark claim and the pixels say together."""
    if marked:
        return "; watermark found"
    if manifest.watermarked is False:
        return f"; no watermark ({manifest.watermark_note or 'the manifest says none was added'})"
    return "; watermark not found"


def _no_manifest_reason(error: str) -> str:
    """Why a file has no manifest when its format has no place for one."""
    return error.replace("files cannot", "cannot") if "cannot carry" in error else error


def _recipe(
    path: Path, manifest: ManifestReport
) -> tuple[str | None, Literal["manifest", "file", "none"]]:
    if manifest.recipe_json is not None:
        return manifest.recipe_json, "manifest"
    try:
        from imagineer.media.images import read_recipe
    except ImportError:
        return None, "none"
    try:
        recipe = read_recipe(path)
    except ValueError:
        return None, "none"  # a damaged recipe is no evidence; the manifest and mark still count
    return (recipe.to_json(), "file") if recipe is not None else (None, "none")


def _read_watermark(
    path: Path, expected: int | None
) -> tuple[watermark.WatermarkReading | None, str]:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _read_video_watermark(path, expected)
    try:
        with Image.open(path) as image:
            frames = [f.convert("RGB") for f in islice(ImageSequence.Iterator(image), MAX_DECODED)]
    except (UnidentifiedImageError, OSError) as err:
        return None, f"not an image Pillow reads: {err}"
    if min(frames[0].size) < watermark.MIN_DETECT_SIDE:
        return None, f"{frames[0].width}x{frames[0].height} is too small to carry a watermark"
    if len(frames) > 1:  # an animated GIF or WebP: every frame votes
        return watermark.detect_video(_spread(frames), expected=expected), ""
    return watermark.detect(frames[0], expected=expected), ""


def _spread(frames: list[Image.Image]) -> list[Image.Image]:
    """At most MAX_VIDEO_FRAMES frames, evenly spread over the clip."""
    step = max(1, len(frames) // MAX_VIDEO_FRAMES)
    return frames[::step][:MAX_VIDEO_FRAMES]


def _read_video_watermark(
    path: Path, expected: int | None
) -> tuple[watermark.WatermarkReading | None, str]:
    try:
        import av
    except ImportError:
        return None, "PyAV is not installed: pip install av to read watermarks in clips"
    try:
        with av.open(str(path)) as container:
            frames = [f.to_image() for f in islice(container.decode(video=0), MAX_DECODED)]
    except (av.FFmpegError, ValueError) as err:
        return None, f"cannot decode {path.name}: {err}"
    if not frames:
        return None, f"{path.name} has no video frames"
    return watermark.detect_video(_spread(frames), expected=expected), ""


def _watermark_line(reading: watermark.WatermarkReading | None, note: str) -> str:
    if reading is None:
        return f"watermark: not read ({note})"
    if not reading.found:
        return f"watermark: none (score {reading.score:.2f} < {reading.threshold:.2f})"
    frames = (
        f", {reading.frames_found}/{reading.frames_checked} frames"
        if reading.frames_checked > 1
        else ""
    )
    return f"watermark: payload {reading.payload:08x} (score {reading.score:.2f}{frames})"
