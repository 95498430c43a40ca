"""Watermark robustness: detection rate, bit accuracy and PSNR cost under common edits.

Run: python bench/bench_watermark.py [--images 200] [--strength 2.5] [--baseline 50]

Marks `--images` generated-like 256x256 images (half rendered by the procedural world, half
gradients + shapes + noise), attacks each copy, and reads it back with `detect`. A row is one
attack: the share of images whose payload came back exactly (CRC-checked), mean bit accuracy,
median score and the median detect time. "unmarked" rows count false positives on the same
images without a mark. With invisible-watermark installed, `--baseline N` also runs its
dwtDctSvd on N images (48 bits, read after resizing back to the original size: generous to it).
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

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


ATTACKS: dict[str, Attack] = {
    "none": lambda im, rng: im,
    "jpeg q90": lambda im, rng: jpeg(im, 90),
    "jpeg q70": lambda im, rng: jpeg(im, 70),
    "jpeg q50": lambda im, rng: jpeg(im, 50),
    "resize 0.5x": lambda im, rng: half(im),
    "resize 0.5x + jpeg q75": lambda im, rng: jpeg(half(im), 75),
    "crop 10%": crop10,
    "brightness +20%": lambda im, rng: ImageEnhance.Brightness(im).enhance(1.2),
    "brightness -20%": lambda im, rng: ImageEnhance.Brightness(im).enhance(0.8),
}
FALSE_POSITIVE_ATTACKS = ("none", "jpeg q75 (unmarked)")


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
    report.add(
        Timing(
            f"embed (strength {strength})",
            tuple(embed_s),
            {"psnr_mean_db": round(float(np.mean(psnrs)), 2), "psnr_min_db": round(min(psnrs), 2)},
        )
    )
    for name, attack in ATTACKS.items():
        attacked = [attack(m, rng) for m in marked]
        report.add(_detect_row(name, attacked, payloads, marker))
    report.add(_detect_row("unmarked", images, None, marker))
    unmarked_jpeg = [jpeg(image, 75) for image in images]
    report.add(_detect_row("unmarked, jpeg q75", unmarked_jpeg, None, marker))


def _detect_row(
    name: str, images: list[Image.Image], payloads: list[int] | None, marker: wm.Watermarker
) -> Timing:
    times, hits, accuracy, scores = [], 0, [], []
    for i, image in enumerate(images):
        expected = payloads[i] if payloads is not None else None
        start = time.perf_counter()
        reading = wm.detect(image, expected=expected, marker=marker)
        times.append(time.perf_counter() - start)
        scores.append(reading.score)
        if expected is None:
            hits += reading.found  # a false positive
        else:
            hits += reading.matches(expected)
            accuracy.append(reading.bit_accuracy or 0.0)
    label = f"detect: {name}"
    extra = {
        "detected": round(hits / len(images), 4) if payloads is not None else "",
        "false_pos": f"{hits}/{len(images)}" if payloads is None else "",
        "bit_acc": round(float(np.mean(accuracy)), 4) if accuracy else "",
        "score_med": round(float(np.median(scores)), 2),
        "score_max": round(float(np.max(scores)), 2),
    }
    return Timing(label, tuple(times), extra)


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
        encoder.set_watermark("bits", [int(b) for b in wm.encode_bits(payload)])
        start = time.perf_counter()
        bgr = encoder.encode(np.asarray(image)[..., ::-1].copy(), "dwtDctSvd", scales=[0, scale, 0])
        times.append(time.perf_counter() - start)
        out = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))
        marked.append(out)
        psnrs.append(wm.psnr(image, out))
    report.add(
        Timing(
            f"baseline dwtDctSvd scale {scale}: embed",
            tuple(times),
            {"psnr_mean_db": round(float(np.mean(psnrs)), 2), "psnr_min_db": round(min(psnrs), 2)},
        )
    )
    decoder = WatermarkDecoder("bits", wm.CODE_BITS)

    def read(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
        bgr = np.asarray(image.convert("RGB").resize(size))[..., ::-1].copy()
        return np.asarray(decoder.decode(bgr, "dwtDctSvd", scales=[0, scale, 0]), dtype=np.int8)

    for name, attack in ATTACKS.items():
        hits, accuracy, read_s = 0, [], []
        for out, payload in zip(marked, payloads, strict=True):
            start = time.perf_counter()
            bits = read(attack(out, rng), out.size)
            read_s.append(time.perf_counter() - start)
            hits += wm.decode_bits(bits) == payload
            accuracy.append(float(np.mean(bits == wm.encode_bits(payload))))
        report.add(
            Timing(
                f"baseline dwtDctSvd scale {scale}: {name}",
                tuple(read_s),
                {"detected": round(hits / len(marked), 4), "bit_acc": round(np.mean(accuracy), 4)},
            )
        )
    false_pos = sum(wm.decode_bits(read(image, image.size)) is not None for image in images)
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
    parser.add_argument("--strength", type=float, default=wm.DEFAULT_STRENGTH)
    parser.add_argument("--baseline", type=int, default=50, help="images for dwtDctSvd; 0: skip")
    parser.add_argument("--baseline-scale", type=int, default=36)
    parser.add_argument("--name", default="watermark")
    args = parser.parse_args()
    images = make_images(args.images)
    report = Report(args.name)
    run_ours(images, args.strength, report)
    if args.baseline > 0:
        run_baseline(images[: args.baseline], args.baseline_scale, report)
    report.finish(plain=True)


if __name__ == "__main__":
    main()
