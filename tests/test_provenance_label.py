"""Labelling clips and outputs: MP4 sign + verify, the vote after re-encoding, watermark off."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from imagineer.media.video import read_video, write_video
from imagineer.provenance import c2pa as pc
from imagineer.provenance import iptc
from imagineer.provenance import watermark as wm
from imagineer.provenance.keys import SigningIdentity, ensure_signing_identity
from imagineer.provenance.label import (
    WATERMARK_OFF,
    WEBM_UNSIGNED,
    label_video,
    write_labelled_video,
)
from imagineer.provenance.recipe import Recipe
from imagineer.provenance.verify import verify
from imagineer.service.outputs import Marking, write_output

pytest.importorskip("av")


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> SigningIdentity:
    return ensure_signing_identity(tmp_path_factory.mktemp("label-keys"))


@pytest.fixture(scope="module")
def marker() -> wm.Watermarker:
    return wm.Watermarker.create()


def recipe(kind: str = "animate", seed: int = 5) -> Recipe:
    return Recipe(
        prompt="a red balloon over the sea at dusk",
        kind=kind,  # type: ignore[arg-type]
        engine="embedded",
        model="imagineer-embedded-video",
        model_hash="ab" * 32,
        seed=seed,
        steps=12,
        guidance=4.0,
        width=256,
        height=256,
    )


def pan(seed: int, frames: int = 12, size: int = 256) -> list[np.ndarray]:
    """A picture with shapes and noise, panned diagonally: frames of a small clip."""
    rng = np.random.default_rng(seed)
    big = size + 48
    ramp = np.linspace(0, 1, big)[:, None, None]
    base = rng.uniform(20, 220, 3) * (1 - ramp) + rng.uniform(20, 220, 3) * ramp
    image = Image.fromarray(np.repeat(base, big, axis=1).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y, s = rng.uniform(0, big, 3)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.ellipse([x, y, x + s / 2, y + s / 3], fill=colour)
    soft = np.asarray(image.filter(ImageFilter.GaussianBlur(1)), dtype=np.float64)
    soft = np.clip(soft + rng.normal(0, 2, soft.shape), 0, 255).astype(np.uint8)
    steps = np.linspace(0, 48, frames).round().astype(int)
    return [soft[s : s + size, s : s + size].copy() for s in steps]


def reencode(path: Path, dst: Path, crf: int) -> Path:
    """What a sharing site does: decode and encode again as H.264 (drops the manifest)."""
    return write_video(list(read_video(path).frames), dst, crf=crf)


def test_mp4_signs_verifies_and_every_mark_agrees(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    made = recipe()
    written = write_labelled_video(pan(1), tmp_path / "clip.mp4", made, identity=identity)
    assert written.signed and written.watermarked and written.xmp and written.note == ""
    verdict = verify(written.path)
    assert verdict.finding == "manifest_valid", verdict.details()
    assert verdict.summary.endswith("; watermark found")
    assert verdict.manifest.actions == ("c2pa.created",)
    assert verdict.manifest.digital_source_type == iptc.TRAINED_ALGORITHMIC_MEDIA
    assert verdict.xmp is not None
    assert verdict.xmp.digital_source_type == verdict.manifest.digital_source_type
    assert verdict.xmp.ai_system == made.model
    assert verdict.watermark is not None and verdict.watermark_matches_recipe is True
    assert verdict.recipe_source == "manifest"
    assert Recipe.from_json(verdict.recipe_json or "") == made


def test_video_watermark_survives_h264_reencode_by_vote(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    made = recipe(seed=6)
    written = write_labelled_video(
        pan(2, frames=16), tmp_path / "clip.mp4", made, identity=identity
    )
    shared = reencode(written.path, tmp_path / "shared.mp4", crf=28)
    verdict = verify(shared)
    assert verdict.finding == "watermark_only", verdict.details()
    assert verdict.summary == "manifest stripped but watermark found"
    reading = verdict.watermark
    assert reading is not None and reading.matches(wm.payload_for_recipe(made.to_json()))
    assert reading.frames_checked == 16
    # the vote is stronger than any single frame
    frames = [Image.fromarray(f) for f in read_video(shared).frames]
    single = max(wm.detect(f, search_crops=False).score for f in frames[:4])
    assert reading.score > single


def test_unmarked_clip_reads_unmarked(tmp_path: Path) -> None:
    clip = write_video(pan(3), tmp_path / "plain.mp4")
    verdict = verify(clip)
    assert verdict.finding == "no_marks"
    assert verdict.watermark is not None and not verdict.watermark.found


def test_watermark_off_is_recorded_in_the_manifest(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    written = write_labelled_video(
        pan(4), tmp_path / "clip.mp4", recipe(seed=7), identity=identity, watermark=False
    )
    assert not written.watermarked and written.signed
    assert written.note == f"no watermark: {WATERMARK_OFF}"
    verdict = verify(written.path)
    assert verdict.manifest.valid and verdict.manifest.watermarked is False
    assert verdict.manifest.watermark_note == WATERMARK_OFF
    assert verdict.summary.endswith(f"; no watermark ({WATERMARK_OFF})")
    assert f"manifest says: no watermark ({WATERMARK_OFF})" in verdict.details()
    assert verdict.watermark is not None and not verdict.watermark.found


def test_image_output_with_the_watermark_setting_off(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    image = Image.fromarray(pan(5, frames=1)[0])
    made = recipe(kind="imagine", seed=8)
    off = write_output(image, tmp_path / "off.png", made, Marking(False, identity))
    on = write_output(image, tmp_path / "on.png", made, Marking(True, identity))
    assert (off.watermarked, off.signed, on.watermarked, on.signed) == (False, True, True, True)
    off_verdict, on_verdict = verify(off.path), verify(on.path)
    assert off_verdict.manifest.watermarked is False
    assert off_verdict.manifest.watermark_note == WATERMARK_OFF
    assert on_verdict.manifest.watermarked is True
    assert on_verdict.manifest.watermark_payload == wm.payload_for_recipe(made.to_json())
    assert on_verdict.watermark is not None and on_verdict.watermark.found


def test_changed_mp4_bytes_read_as_edited_after_signing(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    written = write_labelled_video(pan(6), tmp_path / "clip.mp4", recipe(seed=9), identity=identity)
    data = bytearray(written.path.read_bytes())
    mdat = data.index(b"mdat") + 400  # inside the coded frames
    data[mdat] ^= 0x5A
    edited = tmp_path / "edited.mp4"
    edited.write_bytes(bytes(data))
    verdict = verify(edited)
    assert verdict.finding == "edited_after_signing", verdict.details()
    assert verdict.manifest.content_changed


def test_repainted_png_that_keeps_its_manifest_reads_as_edited(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    """An editor that keeps every chunk but writes new pixels: the manifest no longer fits."""
    made = recipe(kind="imagine", seed=10)
    signed = write_output(
        Image.fromarray(pan(7, frames=1)[0]), tmp_path / "out.png", made, Marking(True, identity)
    ).path
    painted = Image.open(signed).convert("RGB")
    ImageDraw.Draw(painted).rectangle([40, 40, 120, 90], fill=(255, 0, 0))
    raw = b"".join(b"\0" + painted.tobytes()[y * 768 : (y + 1) * 768] for y in range(256))
    edited = tmp_path / "edited.png"
    edited.write_bytes(_replace_idat(signed.read_bytes(), zlib.compress(raw)))
    assert Image.open(edited).convert("RGB").getpixel((50, 50)) == (255, 0, 0)
    verdict = verify(edited)
    assert verdict.finding == "edited_after_signing", verdict.details()
    assert verdict.summary.startswith("edited after signing")


def _replace_idat(png: bytes, data: bytes) -> bytes:
    """The PNG with its IDAT chunks replaced by one holding `data`, other chunks kept."""
    out, pos, placed = [png[:8]], 8, False
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind = png[pos + 4 : pos + 8]
        chunk = png[pos : pos + 12 + length]
        pos += 12 + length
        if kind != b"IDAT":
            out.append(chunk)
        elif not placed:
            crc = zlib.crc32(b"IDAT" + data).to_bytes(4, "big")
            out.append(len(data).to_bytes(4, "big") + b"IDAT" + data + crc)
            placed = True
    return b"".join(out)


def test_webm_is_marked_but_cannot_be_signed(identity: SigningIdentity, tmp_path: Path) -> None:
    made = recipe(seed=11)
    written = write_labelled_video(pan(8), tmp_path / "clip.webm", made, identity=identity)
    assert written.watermarked and not written.signed and written.note == WEBM_UNSIGNED
    verdict = verify(written.path)
    assert verdict.summary == "watermark found; .webm cannot carry a C2PA manifest"
    assert verdict.watermark_matches_recipe is True and verdict.recipe_source == "file"


def test_animation_of_an_image_is_an_edit_with_its_parent(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    still = write_output(
        Image.fromarray(pan(9, frames=1)[0]),
        tmp_path / "still.png",
        recipe(kind="imagine", seed=12),
        Marking(True, identity),
    ).path
    written = write_labelled_video(
        pan(9),
        tmp_path / "clip.mp4",
        recipe(seed=13),
        identity=identity,
        action="edited",
        parents=[still],
    )
    verdict = verify(written.path)
    assert verdict.finding == "manifest_valid"
    assert verdict.manifest.actions[:2] == ("c2pa.opened", "c2pa.edited")
    assert [(i.relationship, i.title) for i in verdict.manifest.ingredients] == [
        ("parentOf", "still.png")
    ]


def test_label_video_marks_and_signs_a_clip_on_disk(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    made = recipe(seed=14)
    clip = write_video(pan(10), tmp_path / "clip.mp4", fps=12)
    written = label_video(clip, made, identity=identity)
    assert written.signed and written.watermarked
    assert read_video(clip).frame_count == 12
    verdict = verify(clip)
    assert verdict.finding == "manifest_valid" and verdict.watermark_matches_recipe is True
    with pytest.raises(pc.ProvenanceError, match="signed already"):
        label_video(clip, made, identity=identity)


def test_small_frames_are_left_unmarked_and_say_why(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    written = write_labelled_video(
        pan(11, size=96), tmp_path / "tiny.mp4", recipe(seed=15), identity=identity
    )
    assert not written.watermarked and "under 128 px" in written.note
    assert "under 128 px" in verify(written.path).manifest.watermark_note
