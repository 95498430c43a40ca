"""An invisible watermark carrying 32 bits: spread spectrum on a fixed grid, read back by FFT.

How it works. The payload (32 bits, e.g. `payload_for_recipe`) gets a CRC-16, and each of the
48 bits owns a disjoint random set of mid-band frequencies of a 128x128 luma tile. The tile,
signed by the bits, repeats over a canonical 256x256 canvas that is stretched over the whole
image, so the mark scales with the picture: a resized copy maps back onto the same grid.
Embedding is informed: it measures each bit after a simulated JPEG q75 + 0.5x resize and
boosts the weak ones at a fixed total strength (the PSNR cost); pictures that still read
weakly (flat, dark, clipped) get more strength, up to a cap.

Reading folds the luma canvas onto one tile, whitens its spectrum (so brightness and contrast
do not matter) and correlates with every bit pattern at every cyclic shift by FFT. The grid's
origin is tried first (an untouched or resized output), then the best shift, then the canvas
as a 85-99% part of a larger one (a crop). A mark is `found` only when the aligned energy
clears a threshold set above what unmarked images score *and* the CRC matches. The key is
public: this labels honest outputs, it does not resist a forger.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

CANVAS = 256  # the canonical grid every image is mapped onto
TILE = 128  # the pattern's period on that grid
BAND = (6.0, 24.0)  # pattern frequencies, cycles per tile: survives JPEG and 0.5x resizes
PAYLOAD_BITS = 32
CRC_BITS = 16
CODE_BITS = PAYLOAD_BITS + CRC_BITS
KEY_SEED = 0x1A6E_2026  # public key of imagineer's mark; changing it orphans old marks
DEFAULT_STRENGTH = 2.5  # RMS change in 8-bit levels: ≈ 40 dB PSNR
MAX_STRENGTH = 3.2  # the most a hard image gets: ≈ 38 dB PSNR
TARGET_SCORE = 6.0  # score wanted after the simulated attack before strength is raised
# Score = mean squared z of the 48 bit correlations at an alignment: ≈ 1 by chance at one
# given shift, ≈ 2.2 (max 2.5) for the best of 16k shifts x 16 crops of an unmarked image.
DEFAULT_THRESHOLD = 2.6  # for an alignment found by searching shifts and crops
ORIGIN_THRESHOLD = 1.8  # at the grid origin: chance exceeds it with p ≈ 6e-4 (chi2, 48 dof)
CROP_FRACTIONS = tuple(round(1.0 - 0.01 * i, 2) for i in range(1, 16))  # 0.99 .. 0.85
MIN_EMBED_SIDE = 128  # smaller outputs (e.g. 32 px base images) are never marked
MIN_DETECT_SIDE = 32
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


@dataclass(frozen=True)
class WatermarkReading:
    """What `detect` found in an image or a clip."""

    found: bool  # the pattern is there and its CRC checks: `payload` can be trusted
    payload: int | None  # the 32 bits when found, else None
    score: float  # mean squared z of the bit correlations: ≈ 1 by chance, higher marked
    threshold: float  # the score `found` needs
    bit_accuracy: float | None = None  # share of bits equal to `expected`, when one was given
    frames_checked: int = 1
    frames_found: int = 0  # for a clip: frames whose own reading was found

    def matches(self, payload: int) -> bool:
        """Whether a mark was found and carries `payload`."""
        return self.found and self.payload == payload


@dataclass(frozen=True)
class _Alignment:
    """The best (scale, shift) of the pattern in one image and the soft bit values there."""

    score: float
    soft: np.ndarray  # (CODE_BITS,) signed correlation z-scores
    threshold: float  # the score this alignment needs: lower at the origin, one hypothesis

    @property
    def valid(self) -> bool:
        return self.score >= self.threshold and decode_bits(self.soft > 0) is not None


@dataclass(frozen=True)
class Watermarker:
    """The bit patterns of one key; build it once per process with `Watermarker.create()`."""

    spectra: np.ndarray  # (CODE_BITS, TILE, TILE // 2 + 1) complex: each bit's frequencies
    patterns: np.ndarray  # (CODE_BITS, TILE, TILE) unit-RMS spatial patterns

    @classmethod
    def create(cls, seed: int = KEY_SEED) -> Watermarker:
        rng = np.random.default_rng(seed)
        ky, kx = np.meshgrid(
            np.fft.fftfreq(TILE) * TILE, np.fft.rfftfreq(TILE) * TILE, indexing="ij"
        )
        radius = np.hypot(kx, ky)
        usable = (radius >= BAND[0]) & (radius <= BAND[1])
        usable &= (kx > 0) | ((kx == 0) & (ky > 0))  # one of each conjugate pair
        cells = np.argwhere(usable)
        rng.shuffle(cells)
        spectra = np.zeros((CODE_BITS, TILE, TILE // 2 + 1), dtype=np.complex128)
        phases = np.exp(2j * np.pi * rng.random(len(cells)))
        for n, (row, col) in enumerate(cells):
            spectra[n % CODE_BITS, row, col] = phases[n]
        patterns = np.fft.irfft2(spectra, s=(TILE, TILE))
        patterns /= patterns.std(axis=(1, 2), keepdims=True)
        return cls(spectra=spectra, patterns=patterns)


def payload_for_recipe(recipe_json: str) -> int:
    """The 32-bit payload of a recipe: the first 4 bytes of sha256 of its canonical JSON."""
    try:
        data = json.loads(recipe_json)
    except json.JSONDecodeError as err:
        raise ValueError(f"recipe_json does not parse as JSON: {err}") from err
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(canonical.encode("ascii")).digest()[:4], "big")


def encode_bits(payload: int) -> np.ndarray:
    """The 48 code bits (0/1) of a payload: its 32 bits, big-endian, then their CRC-16."""
    _check_payload(payload)
    crc = zlib.crc32(payload.to_bytes(4, "big")) & 0xFFFF
    word = (payload << CRC_BITS) | crc
    return np.array([(word >> (CODE_BITS - 1 - i)) & 1 for i in range(CODE_BITS)], np.int8)


def decode_bits(bits: Sequence[int] | np.ndarray) -> int | None:
    """The payload of 48 code bits, or None when their CRC does not check."""
    word = 0
    for bit in bits:
        word = (word << 1) | int(bit)
    payload, crc = word >> CRC_BITS, word & 0xFFFF
    return payload if zlib.crc32(payload.to_bytes(4, "big")) & 0xFFFF == crc else None


def embed(
    image: Image.Image,
    payload: int,
    *,
    strength: float = DEFAULT_STRENGTH,
    max_strength: float = MAX_STRENGTH,
    iterations: int = 3,
    marker: Watermarker | None = None,
) -> Image.Image:
    """A copy of `image` (RGB or RGBA) carrying `payload`; alpha is kept as it is.

    `strength` is the RMS change in 8-bit levels; images where the simulated attack reads
    weakly get more, up to `max_strength` (3.2 ≈ 38 dB PSNR).
    """
    # 1. check inputs
    _check_embed_args(image, payload, strength, max_strength, iterations)
    marker = marker or Watermarker.create()
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    # 2. signed bits, 3. informed rounds: boost the bits weakest after a simulated attack
    signs = encode_bits(payload) * 2.0 - 1.0
    gains = np.ones(CODE_BITS)
    score = TARGET_SCORE
    for _ in range(iterations):
        marked = _apply(rgb, signs * gains, strength, marker)
        soft = _align_at_origin(_simulated_attack(marked), marker)
        margin = signs * soft
        target = max(float(np.median(margin)), 1e-6)
        gains *= np.clip(1.0 + 0.5 * (target - margin) / target, 0.5, 3.0)
        score = float(np.mean(soft**2))
    # 4. hard pictures (flat, dark, clipped) get more strength: the score grows as its square
    if score < TARGET_SCORE:
        strength = min(max_strength, strength * float(np.sqrt(TARGET_SCORE / max(score, 1e-6))))
    out = Image.fromarray(_apply(rgb, signs * gains, strength, marker))
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _check_embed_args(
    image: Image.Image, payload: int, strength: float, max_strength: float, iterations: int
) -> None:
    _check_payload(payload)
    if not isinstance(image, Image.Image):
        raise ValueError(f"image must be a PIL.Image.Image, got {type(image).__name__}")
    if min(image.size) < MIN_EMBED_SIDE:
        raise ValueError(
            f"image is {image.width}x{image.height}: watermarks go on final outputs of at "
            f"least {MIN_EMBED_SIDE} px a side (upscale first)"
        )
    if not 0.0 < strength <= max_strength <= 20.0:
        raise ValueError(
            f"strength={strength!r}, max_strength={max_strength!r}: "
            "use 0 < strength <= max_strength <= 20 (RMS change in levels)"
        )
    if iterations < 0:
        raise ValueError(f"iterations={iterations!r}: use 0 or more")


def embed_frames(
    frames: Iterable[Image.Image], payload: int, *, strength: float = DEFAULT_STRENGTH
) -> list[Image.Image]:
    """Mark every frame of a clip with the same payload (one informed round per frame)."""
    marker = Watermarker.create()
    return [embed(f, payload, strength=strength, iterations=1, marker=marker) for f in frames]


def detect(
    image: Image.Image,
    *,
    expected: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    origin_threshold: float = ORIGIN_THRESHOLD,
    search_crops: bool = True,
    marker: Watermarker | None = None,
) -> WatermarkReading:
    """Look for the mark; `expected` (a payload) adds the bit accuracy against it."""
    marker = marker or Watermarker.create()
    limits = (origin_threshold, threshold)
    best = _best_alignment(_luma(image), marker, limits, search_crops)
    return _reading([best], expected, frames_found=None)


def detect_video(
    frames: Iterable[Image.Image],
    *,
    expected: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    origin_threshold: float = ORIGIN_THRESHOLD,
    search_crops: bool = False,
) -> WatermarkReading:
    """Read a clip: soft bit values summed over frames, a soft majority vote."""
    marker = Watermarker.create()
    limits = (origin_threshold, threshold)
    aligned = [_best_alignment(_luma(frame), marker, limits, search_crops) for frame in frames]
    if not aligned:
        raise ValueError("frames is empty: pass at least one decoded frame")
    found = sum(a.valid for a in aligned)
    return _reading(aligned, expected, frames_found=found)


def psnr(original: Image.Image, marked: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB between two RGB images of one size."""
    a = np.asarray(original.convert("RGB"), dtype=np.float64)
    b = np.asarray(marked.convert("RGB"), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def _check_payload(payload: int) -> None:
    if isinstance(payload, bool) or not isinstance(payload, int | np.integer):
        raise ValueError(f"payload={payload!r}: must be an int")
    if not 0 <= int(payload) < 2**PAYLOAD_BITS:
        raise ValueError(f"payload={payload}: must fit in {PAYLOAD_BITS} bits (0 to 2**32-1)")


def _apply(rgb: np.ndarray, weights: np.ndarray, strength: float, m: Watermarker) -> np.ndarray:
    """Add the weighted tile, repeated over the canvas and stretched to the image, to R, G, B."""
    tile = np.tensordot(weights, m.patterns, axes=1)  # (TILE, TILE)
    tile *= strength / tile.std()
    canvas = np.tile(tile, (CANVAS // TILE, CANVAS // TILE)).astype(np.float32)
    height, width = rgb.shape[:2]
    delta = np.asarray(
        Image.fromarray(canvas, mode="F").resize((width, height), _resample(CANVAS, width)),
        dtype=np.float64,
    )
    return np.clip(np.rint(rgb + delta[..., None]), 0, 255).astype(np.uint8)


def _resample(source: int, target: int) -> Image.Resampling:
    return Image.Resampling.BICUBIC if target >= source else Image.Resampling.BOX


def _simulated_attack(rgb: np.ndarray) -> np.ndarray:
    """JPEG q75 after a 0.5x resize: the sharing path the mark must survive."""
    small = Image.fromarray(rgb).reduce(2)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=75)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return _luma(decoded)


def _luma(image: Image.Image | np.ndarray) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if rgb.ndim != 3 or min(rgb.shape[:2]) < MIN_DETECT_SIDE:
        raise ValueError(
            f"image of shape {rgb.shape} is too small to read: need {MIN_DETECT_SIDE} px a side"
        )
    return rgb.astype(np.float64) @ _LUMA


def _canvas(luma: np.ndarray, fraction: float) -> np.ndarray:
    """The luma mapped onto the canvas, as if it were `fraction` of the original picture."""
    side = round(CANVAS * fraction)
    plane = Image.fromarray(luma.astype(np.float32), mode="F")
    resized = plane.resize((side, side), _resample(min(luma.shape), side))
    return np.asarray(resized, dtype=np.float64)


def _fold(canvas: np.ndarray) -> np.ndarray:
    """Sum the canvas onto one tile (zero-padded to whole tiles)."""
    side = -(-canvas.shape[0] // TILE) * TILE
    padded = np.zeros((side, side))
    padded[: canvas.shape[0], : canvas.shape[1]] = canvas - canvas.mean()
    return padded.reshape(side // TILE, TILE, side // TILE, TILE).sum(axis=(0, 2))


def _correlations(canvas: np.ndarray, m: Watermarker) -> np.ndarray:
    """(CODE_BITS, TILE, TILE): each bit's whitened correlation at every cyclic shift, as z."""
    spectrum = np.fft.rfft2(_fold(canvas))
    spectrum /= np.abs(spectrum) + 1e-9  # whitening: host energy and brightness drop out
    corr = np.fft.irfft2(spectrum[None] * np.conj(m.spectra), s=(TILE, TILE))
    return corr / (corr.std(axis=(1, 2), keepdims=True) + 1e-12)


def _align_at_origin(luma: np.ndarray, m: Watermarker) -> np.ndarray:
    return _correlations(_canvas(luma, 1.0), m)[:, 0, 0]


def _best_alignment(
    luma: np.ndarray, m: Watermarker, limits: tuple[float, float], search_crops: bool
) -> _Alignment:
    """Try the grid's own origin, then every shift, then crops; keep the strongest reading.

    An untouched or resized output keeps its mark at the origin: one hypothesis, so a lower
    threshold holds the false-positive rate. Searching 16k shifts (and crops) needs a higher one.
    """
    origin_limit, search_limit = limits
    corr = _correlations(_canvas(luma, 1.0), m)
    origin = _Alignment(float(np.mean(corr[:, 0, 0] ** 2)), corr[:, 0, 0], origin_limit)
    if origin.valid:
        return origin
    best = _peak(corr, search_limit)
    for fraction in CROP_FRACTIONS if search_crops else ():
        if best.valid:
            break  # a valid read: no crop can do better
        candidate = _peak(_correlations(_canvas(luma, fraction), m), search_limit)
        if candidate.score > best.score:
            best = candidate
    return (
        best if best.valid or best.score / search_limit >= origin.score / origin_limit else origin
    )


def _peak(corr: np.ndarray, threshold: float) -> _Alignment:
    """The cyclic shift where the bit patterns together correlate most."""
    energy = (corr**2).mean(axis=0)  # (TILE, TILE)
    row, col = np.unravel_index(int(np.argmax(energy)), energy.shape)
    return _Alignment(float(energy[row, col]), corr[:, row, col], threshold)


def _reading(
    aligned: Sequence[_Alignment], expected: int | None, frames_found: int | None
) -> WatermarkReading:
    soft = np.sum([a.soft for a in aligned], axis=0)
    score = float(np.mean([a.score for a in aligned]))
    threshold = float(np.mean([a.threshold for a in aligned]))
    payload = decode_bits((soft > 0).astype(np.int8))
    found = payload is not None and score >= threshold
    accuracy = None
    if expected is not None:
        accuracy = float(np.mean((soft > 0) == encode_bits(expected).astype(bool)))
    return WatermarkReading(
        found=found,
        payload=payload if found else None,
        score=score,
        threshold=threshold,
        bit_accuracy=accuracy,
        frames_checked=len(aligned),
        frames_found=int(found) if frames_found is None else frames_found,
    )
