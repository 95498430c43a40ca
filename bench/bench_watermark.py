"""Watermark robustness: detection rate, bit accuracy and PSNR cost under common edits.

Run: python bench/bench_watermark.py [--images 200] [--clips 20] [--strength 2.5] [--baseline 50]

Marks `--images` generated-like 256x256 images (half rendered by the procedural world, half
gradients + shapes + noise), attacks each copy, and reads it back with `detect`. A row is one
attack: the share of images whose payload came back exactly (CRC-checked), that share for
world scenes and for shape pictures, mean code-bit accuracy, median and 5th-percentile score,
and the median detect time. "unmarked" rows count false positives on the same images without
a mark, and their highest score. `--clips N` marks N panning clips of world scenes with
`embed_frames`, writes them as MP4 (H.264 crf 23), re-encodes them and reads them back by
the soft vote over frames. With invisible-watermark installed, `--baseline N` also runs its
dwtDctSvd on N images (the 48 payload + CRC bits, read after resizing back to the original
size: generous to it).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from _harness import Report, Timing
from imagineer.provenance import watermark as wm

Attack = Callable[[Image.Image, np.random.Generator], Image.Image]


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC)


def crop10(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Keep 90% of each side at a random offset (19% of the area gone)."""
    width, height = image.size
    keep_w, keep_h = int(width * 0.9), int(height * 0.9)
    x, y = int(rng.integers(0, width - keep_w + 1)), int(rng.integers(0, height - keep_h + 1))
    return image.crop((x, y, x + keep_w, y + keep_h))


def h264_still(image: Image.Image, crf: int = 23) -> Image.Image:
    """The picture as a one-frame H.264 MP4 (yuv420p, crf 23), decoded again."""
    from imagineer.media.video import read_video, write_video

    with tempfile.TemporaryDirectory() as folder:
        path = write_video([np.asarray(image.convert("RGB"))], Path(folder) / "still.mp4", crf=crf)
        return Image.fromarray(read_video(path).frames[0])


ATTACKS: dict[str, Attack] = {
    "none": lambda im, rng: im,
    "jpeg q90": lambda im, rng: jpeg(im, 90),
    "jpeg q80": lambda im, rng: jpeg(im, 80),
    "jpeg q70": lambda im, rng: jpeg(im, 70),
    "jpeg q60": lambda im, rng: jpeg(im, 60),
    "jpeg q50": lambda im, rng: jpeg(im, 50),
    "resize 0.5x": lambda im, rng: half(im),
    "resize 0.5x + jpeg q75": lambda im, rng: jpeg(half(im), 75),
    "resize 0.5x + jpeg q50": lambda im, rng: jpeg(half(im), 50),
    "crop 10%": crop10,
    "brightness +20%": lambda im, rng: ImageEnhance.Brightness(im).enhance(1.2),
    "brightness -20%": lambda im, rng: ImageEnhance.Brightness(im).enhance(0.8),
    "h264 crf 23 (one-frame mp4)": lambda im, rng: h264_still(im),
}


def procedural_image(rng: np.random.Generator, size: int = 256) -> Image.Image:
    """A gradient sky with random shapes, blur and sensor-like noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, np.pi)
    t = np.cos(angle) * xx + np.sin(angle) * yy
    t = (t - t.min()) / (np.ptp(t) + 1e-9)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    base = c0 * (1 - t[..., None]) + c1 * t[..., None]
    image = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(int(v) for v in rng.uniform(0, 255, 3))
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        s = rng.uniform(0.05, 0.5) * size
        box = [x0, y0, x0 + s, y0 + s * rng.uniform(0.4, 1.5)]
        kind = int(rng.integers(3))
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([tuple(p) for p in rng.uniform(-0.1, 1.1, (3, 2)) * size], fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 2))))
    noisy = np.asarray(image, dtype=np.float64) + rng.normal(0, rng.uniform(0, 8), (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def world_image(rng: np.random.Generator, size: int = 256) -> Image.Image | None:
    """A scene from the procedural world, or None when the world package is not there."""
    try:
        from imagineer.world.render import render
        from imagineer.world.scene import sample_scene
    except ImportError:
        return None
    return Image.fromarray(render(sample_scene(rng), size, size))


def make_images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        world = world_image(rng) if i % 2 == 0 else None
        images.append(world if world is not None else procedural_image(rng))
    return images


def run_ours(images: list[Image.Image], strength: float, report: Report) -> None:
    rng = np.random.default_rng(1)
    marker = wm.Watermarker.create()
    payloads = [int(p) for p in rng.integers(0, 2**32, len(images))]
    embed_s, marked, psnrs = [], [], []
    for image, payload in zip(images, payloads, strict=True):
        start = time.perf_counter()
        out = wm.embed(image, payload, strength=strength, marker=marker)
        embed_s.append(time.perf_counter() - start)
        marked.append(out)
        psnrs.append(wm.psnr(image, out))
    report.add(_embed_row(f"embed (strength {strength})", embed_s, psnrs))
    for name, attack in ATTACKS.items():
        attacked = [attack(m, rng) for m in marked]
        report.add(_detect_row(name, attacked, payloads, marker))
    report.add(_detect_row("unmarked", images, None, marker))
    unmarked_jpeg = [jpeg(image, 75) for image in images]
    report.add(_detect_row("unmarked, jpeg q75", unmarked_jpeg, None, marker))


def _embed_row(label: str, times: list[float], psnrs: list[float]) -> Timing:
    """Embedding times with the marked images' PSNR against the originals (mean, worst)."""
    extra = {"psnr_mean_db": round(float(np.mean(psnrs)), 2), "psnr_min_db": round(min(psnrs), 2)}
    return Timing(label, tuple(times), extra)


def _detect_row(
    name: str, images: list[Image.Image], payloads: list[int] | None, marker: wm.Watermarker
) -> Timing:
    times, hits, accuracy, scores = [], [], [], []
    for i, image in enumerate(images):
        expected = payloads[i] if payloads is not None else None
        start = time.perf_counter()
        reading = wm.detect(image, expected=expected, marker=marker)
        times.append(time.perf_counter() - start)
        scores.append(reading.score)
        if expected is None:
            hits.append(reading.found)  # a false positive
        else:
            hits.append(reading.matches(expected))
            accuracy.append(reading.bit_accuracy or 0.0)
    extra: dict[str, str | float] = {
        "score_med": round(float(np.median(scores)), 2),
        "score_p5": round(float(np.quantile(scores, 0.05)), 2),
        "score_max": round(float(np.max(scores)), 2),
    }
    if payloads is None:
        extra["false_pos"] = f"{sum(hits)}/{len(images)}"
    else:
        extra |= {
            "detected": round(float(np.mean(hits)), 4),
            "det_world": round(float(np.mean(hits[0::2])), 4),  # make_images alternates
            "det_shapes": round(float(np.mean(hits[1::2])), 4),
            "bit_acc": round(float(np.mean(accuracy)), 4),
        }
    return Timing(f"detect: {name}", tuple(times), extra)


def pan_clip(rng: np.random.Generator, frames: int = 24, size: int = 256) -> list[Image.Image]:
    """A world scene (or a shape picture) rendered larger, panned diagonally by 64 px."""
    big = world_image(rng, size + 64) or procedural_image(rng, size + 64)
    offsets = np.linspace(0, 64, frames).round().astype(int)
    return [big.crop((int(x), int(x), int(x) + size, int(x) + size)) for x in offsets]


def run_clips(count: int, report: Report) -> None:
    """Clips: mark with embed_frames, write MP4 crf 23, re-encode, read by the vote over frames."""
    from imagineer.media.video import read_video, write_video

    rng = np.random.default_rng(2)
    marker = wm.Watermarker.create()
    rows: dict[str, list[tuple[bool, float, float]]] = {}
    embed_s, psnrs = [], []
    with tempfile.TemporaryDirectory() as folder:
        for n in range(count):
            frames, payload = pan_clip(rng), int(rng.integers(0, 2**32))
            start = time.perf_counter()
            marked = wm.embed_frames(frames, payload, marker=marker)
            embed_s.append(time.perf_counter() - start)
            psnrs += [wm.psnr(a, b) for a, b in zip(frames, marked, strict=True)]
            path = write_video([np.asarray(f) for f in marked], Path(folder) / f"{n}.mp4")
            written = [Image.fromarray(f) for f in read_video(path).frames]
            again = _reencode(written, Path(folder) / f"{n}-28.mp4", 28, 1)
            smaller = _reencode(written, Path(folder) / f"{n}-half.mp4", 28, 2)
            for name, clip in (
                ("mp4 crf 23 (as written)", written),
                ("re-encoded crf 28", again),
                ("re-encoded 0.5x crf 28", smaller),
            ):
                rows.setdefault(name, []).append(_read_clip(clip, payload, marker))
    report.add(_embed_row(f"clip embed_frames ({len(frames)} frames)", embed_s, psnrs))
    for name, results in rows.items():
        report.add(
            Timing(
                f"clip detect: {name}",
                tuple(r[2] for r in results),
                {
                    "detected": round(float(np.mean([r[0] for r in results])), 4),
                    "frames_alone": round(float(np.mean([r[1] for r in results])), 4),
                },
            )
        )


def _reencode(frames: list[Image.Image], path: Path, crf: int, shrink: int) -> list[Image.Image]:
    from imagineer.media.video import read_video, write_video

    side = frames[0].width // shrink // 2 * 2
    arrays = [np.asarray(f.resize((side, side), Image.Resampling.BICUBIC)) for f in frames]
    return [Image.fromarray(f) for f in read_video(write_video(arrays, path, crf=crf)).frames]


def _read_clip(
    frames: list[Image.Image], payload: int, marker: wm.Watermarker
) -> tuple[bool, float, float]:
    """(found with the right payload, share of frames readable alone, seconds) over 16 frames."""
    picked = frames[:: max(1, len(frames) // 16)][:16]
    start = time.perf_counter()
    reading = wm.detect_video(picked, expected=payload, marker=marker)
    seconds = time.perf_counter() - start
    return reading.matches(payload), reading.frames_found / reading.frames_checked, seconds


def payload_word(payload: int) -> np.ndarray:
    """The 48 bits the baseline carries: the payload and its CRC-16, without the code."""
    word = (payload << 16) | (zlib.crc32(payload.to_bytes(4, "big")) & 0xFFFF)
    return np.array([(word >> (47 - i)) & 1 for i in range(48)], dtype=np.int8)


def word_payload(bits: np.ndarray) -> int | None:
    word = int("".join(str(int(b)) for b in bits), 2)
    payload = word >> 16
    return payload if zlib.crc32(payload.to_bytes(4, "big")) & 0xFFFF == word & 0xFFFF else None


def run_baseline(images: list[Image.Image], scale: int, report: Report) -> None:
    """invisible-watermark's dwtDctSvd with the same 48 code bits, for comparison."""
    try:
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError:
        print("invisible-watermark is not installed: no baseline rows")
        return
    rng = np.random.default_rng(1)
    payloads = [int(p) for p in rng.integers(0, 2**32, len(images))]
    marked, psnrs, times = [], [], []
    for image, payload in zip(images, payloads, strict=True):
        encoder = WatermarkEncoder()
        encoder.set_watermark("bits", [int(b) for b in payload_word(payload)])
        start = time.perf_counter()
        bgr = encoder.encode(np.asarray(image)[..., ::-1].copy(), "dwtDctSvd", scales=[0, scale, 0])
        times.append(time.perf_counter() - start)
        out = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))
        marked.append(out)
        psnrs.append(wm.psnr(image, out))
    report.add(_embed_row(f"baseline dwtDctSvd scale {scale}: embed", times, psnrs))
    decoder = WatermarkDecoder("bits", 48)

    def read(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
        bgr = np.asarray(image.convert("RGB").resize(size))[..., ::-1].copy()
        return np.asarray(decoder.decode(bgr, "dwtDctSvd", scales=[0, scale, 0]), dtype=np.int8)

    for name, attack in ATTACKS.items():
        hits, accuracy, read_s = 0, [], []
        for out, payload in zip(marked, payloads, strict=True):
            start = time.perf_counter()
            bits = read(attack(out, rng), out.size)
            read_s.append(time.perf_counter() - start)
            hits += word_payload(bits) == payload
            accuracy.append(float(np.mean(bits == payload_word(payload))))
        report.add(
            Timing(
                f"baseline dwtDctSvd scale {scale}: {name}",
                tuple(read_s),
                {"detected": round(hits / len(marked), 4), "bit_acc": round(np.mean(accuracy), 4)},
            )
        )
    false_pos = sum(word_payload(read(image, image.size)) is not None for image in images)
    report.add(
        Timing(
            f"baseline dwtDctSvd scale {scale}: unmarked",
            (0.0,),
            {"false_pos": f"{false_pos}/{len(images)}"},
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--clips", type=int, default=20, help="panning clips for MP4 rows; 0: skip")
    parser.add_argument("--strength", type=float, default=wm.DEFAULT_STRENGTH)
    parser.add_argument("--baseline", type=int, default=50, help="images for dwtDctSvd; 0: skip")
    parser.add_argument("--baseline-scale", type=int, default=36)
    parser.add_argument("--name", default="watermark")
    args = parser.parse_args()
    images = make_images(args.images)
    report = Report(args.name)
    run_ours(images, args.strength, report)
    if args.clips > 0:
        run_clips(args.clips, report)
    if args.baseline > 0:
        run_baseline(images[: args.baseline], args.baseline_scale, report)
    report.finish(plain=True)


if __name__ == "__main__":
    main()
