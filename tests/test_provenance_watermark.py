"""The invisible watermark: payload coding, embedding cost, reading after edits, no false marks."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from imagineer.provenance import watermark as wm

PAYLOAD = 0xC0FFEE42


@pytest.fixture(scope="module")
def marker() -> wm.Watermarker:
    return wm.Watermarker.create()


def scene(seed: int, size: int = 256) -> Image.Image:
    """A gradient with shapes and a little noise, like a generated picture."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size)[None, :, None]
    base = rng.uniform(30, 220, 3) * (1 - ramp) + rng.uniform(30, 220, 3) * ramp
    image = Image.fromarray(np.repeat(base, size, axis=0).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        x, y, s = rng.uniform(0, size, 3)
        draw.ellipse(
            [x, y, x + s / 2, y + s / 3], fill=tuple(int(c) for c in rng.integers(0, 255, 3))
        )
    noisy = np.asarray(image.filter(ImageFilter.GaussianBlur(1)), dtype=np.float64)
    noisy += rng.normal(0, 3, noisy.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


@pytest.fixture(scope="module")
def marked(marker: wm.Watermarker) -> tuple[Image.Image, Image.Image]:
    original = scene(1)
    return original, wm.embed(original, PAYLOAD, marker=marker)


def test_code_bits_round_trip_and_errors_are_corrected() -> None:
    bits = wm.encode_bits(PAYLOAD)
    assert len(bits) == wm.CODE_BITS == 162
    assert wm.decode_bits(bits) == PAYLOAD
    flipped = bits.copy()
    flipped[::20] ^= 1  # 9 wrong code bits, spread out: the convolutional code fixes them
    assert wm.decode_bits(flipped) == PAYLOAD


def test_soft_decoding_uses_confidence() -> None:
    signs = wm.encode_bits(PAYLOAD) * 2.0 - 1.0
    soft = signs * 2.0
    soft[::4] = -0.3 * signs[::4]  # 41 bits wrong, but only weakly so
    assert wm.decode_bits(soft) == PAYLOAD
    assert wm.decode_bits(np.where(soft > 0, 1, 0)) != PAYLOAD  # hard decisions lose


def test_random_words_fail_the_crc() -> None:
    rng = np.random.default_rng(0)
    decoded = [wm.decode_bits(rng.normal(size=wm.CODE_BITS)) for _ in range(200)]
    assert decoded.count(None) == 200  # a CRC-16 passes by chance once in 65536
    with pytest.raises(ValueError, match="162 code bits"):
        wm.decode_bits(np.zeros(48))


@pytest.mark.parametrize("bad", [-1, 2**32, True, 1.5])
def test_payload_must_fit_32_bits(bad: object) -> None:
    with pytest.raises(ValueError, match="payload"):
        wm.encode_bits(bad)  # type: ignore[arg-type]


def test_payload_for_recipe_ignores_formatting() -> None:
    a = wm.payload_for_recipe(json.dumps({"seed": 1, "prompt": "x"}))
    b = wm.payload_for_recipe('{ "prompt": "x",\n "seed": 1 }')
    assert a == b and 0 <= a < 2**32
    assert a != wm.payload_for_recipe(json.dumps({"seed": 2, "prompt": "x"}))


def test_embed_costs_at_most_38_db_and_reads_back(
    marked: tuple[Image.Image, Image.Image], marker: wm.Watermarker
) -> None:
    original, out = marked
    assert out.size == original.size and out.mode == "RGB"
    assert wm.psnr(original, out) >= 38.0
    reading = wm.detect(out, expected=PAYLOAD, marker=marker)
    assert reading.found and reading.payload == PAYLOAD and reading.bit_accuracy == 1.0


def test_survives_jpeg_75_after_half_size(
    marked: tuple[Image.Image, Image.Image], marker: wm.Watermarker
) -> None:
    small = marked[1].resize((128, 128), Image.Resampling.BICUBIC)
    reading = wm.detect(jpeg(small, 75), expected=PAYLOAD, marker=marker)
    assert reading.matches(PAYLOAD)


def test_survives_a_crop(marked: tuple[Image.Image, Image.Image], marker: wm.Watermarker) -> None:
    cropped = marked[1].crop((20, 7, 20 + 230, 7 + 230))
    assert wm.detect(cropped, marker=marker).matches(PAYLOAD)


def test_unmarked_images_read_as_unmarked(marker: wm.Watermarker) -> None:
    reading = wm.detect(scene(2), marker=marker)
    assert not reading.found and reading.payload is None
    assert reading.score < reading.threshold


def test_expected_payload_gives_bit_accuracy(
    marked: tuple[Image.Image, Image.Image], marker: wm.Watermarker
) -> None:
    reading = wm.detect(marked[1], expected=PAYLOAD ^ 0xFF, marker=marker, search_crops=False)
    assert reading.found and not reading.matches(PAYLOAD ^ 0xFF)
    agree = np.mean(wm.encode_bits(PAYLOAD) == wm.encode_bits(PAYLOAD ^ 0xFF))
    assert reading.bit_accuracy == pytest.approx(agree)


def test_alpha_is_kept(marker: wm.Watermarker) -> None:
    image = scene(4).convert("RGBA")
    image.putalpha(Image.new("L", image.size, 200))
    out = wm.embed(image, PAYLOAD, marker=marker, iterations=1)
    assert out.mode == "RGBA" and out.getchannel("A").getextrema() == (200, 200)


def test_small_images_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 128 px"):
        wm.embed(Image.new("RGB", (32, 32)), PAYLOAD)
    with pytest.raises(ValueError, match="strength"):
        wm.embed(scene(0), PAYLOAD, strength=0.0)


def test_video_vote_outweighs_unmarked_frames(marker: wm.Watermarker) -> None:
    frames = [scene(10 + i) for i in range(5)]
    marked_frames = wm.embed_frames(frames[:3], PAYLOAD)
    reading = wm.detect_video([*marked_frames, *frames[3:]], expected=PAYLOAD)
    assert reading.matches(PAYLOAD)
    assert reading.frames_checked == 5 and reading.frames_found == 3
    with pytest.raises(ValueError, match="empty"):
        wm.detect_video([])
