"""Tests for the world renderer: determinism, sizes, every value, and object placement."""

import dataclasses

import numpy as np
import pytest

from imagineer.world.render import render
from imagineer.world.scene import (
    CITIES,
    COLOURS,
    KINDS,
    LANDSCAPES,
    STYLES,
    TIMES,
    WEATHERS,
    ObjectGroup,
    Scene,
)

BASE = Scene("noon", "clear", "hills", "none", ObjectGroup("balloon", "red", 2, "left"), "photo", 7)
_COLOUR_RGB = {
    "red": (220, 35, 35),
    "yellow": (250, 208, 20),
    "green": (40, 180, 60),
    "blue": (35, 90, 230),
    "purple": (145, 55, 200),
    "white": (246, 246, 246),
}


def _components(mask: np.ndarray) -> list[int]:
    """Sizes of the 8-connected components of a boolean mask."""
    seen = np.zeros_like(mask)
    sizes = []
    h, w = mask.shape
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        stack, size = [(y0, x0)], 0
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            size += 1
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        sizes.append(size)
    return sizes


def _object_mask(scene: Scene, size: int) -> np.ndarray:
    with_objects = render(scene, size, size).astype(int)
    without = render(dataclasses.replace(scene, objects=None), size, size).astype(int)
    return np.abs(with_objects - without).max(axis=2) > 40


def test_same_scene_same_pixels_and_seed_changes_details() -> None:
    a = render(BASE, 48, 32)
    assert np.array_equal(a, render(BASE, 48, 32))
    assert not np.array_equal(a, render(dataclasses.replace(BASE, seed=8), 48, 32))


@pytest.mark.parametrize(("w", "h"), [(16, 16), (32, 32), (57, 32), (32, 57), (96, 24), (256, 144)])
def test_shape_and_dtype(w: int, h: int) -> None:
    for style in ("photo", "pixel_art"):
        out = render(dataclasses.replace(BASE, style=style), w, h)
        assert out.shape == (h, w, 3)
        assert out.dtype == np.uint8


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="width=8"):
        render(BASE, 8, 32)
    with pytest.raises(ValueError, match="supersample=0"):
        render(BASE, 32, 32, supersample=0)


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("time", TIMES),
        ("weather", WEATHERS),
        ("landscape", LANDSCAPES),
        ("city", CITIES),
        ("style", STYLES),
    ],
)
def test_every_value_renders_and_changes_the_image(field: str, values: tuple[str, ...]) -> None:
    images = [render(dataclasses.replace(BASE, **{field: v}), 32, 32) for v in values]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            diff = np.abs(images[i].astype(int) - images[j].astype(int)).mean()
            assert diff > 2.0, f"{field}: {values[i]} and {values[j]} look alike ({diff:.2f})"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("count", [1, 2, 3])
def test_objects_are_separate_and_in_their_third(kind: str, count: int) -> None:
    landscape = "sea" if kind == "boat" else "hills"
    for position, third in (("left", 0), ("center", 1), ("right", 2)):
        scene = dataclasses.replace(
            BASE, landscape=landscape, objects=ObjectGroup(kind, "purple", count, position)
        )
        mask = _object_mask(scene, 64)
        blobs = [s for s in _components(mask) if s >= 4]
        assert len(blobs) == count, f"{kind} x{count} {position}: blobs {blobs}"
        xs = np.nonzero(mask)[1]
        assert third * 64 / 3 - 1 <= xs.min() and xs.max() <= (third + 1) * 64 / 3 + 1


@pytest.mark.parametrize("colour", COLOURS)
def test_object_colour_dominates_its_pixels(colour: str) -> None:
    scene = dataclasses.replace(BASE, objects=ObjectGroup("house", colour, 1, "center"))
    image = render(scene, 64, 64).astype(float)
    pixels = image[_object_mask(scene, 64)]
    # neutral entries soak up outlines, doors and shaded roofs
    neutrals = [(30, 30, 30), (128, 128, 128), (110, 70, 40)]
    palette = np.array([*_COLOUR_RGB.values(), *neutrals], dtype=float)
    nearest = np.argmin(((pixels[:, None, :] - palette[None]) ** 2).sum(-1), axis=1)
    votes = np.bincount(nearest, minlength=len(palette))[: len(_COLOUR_RGB)]
    assert list(_COLOUR_RGB)[int(votes.argmax())] == colour


def test_noir_is_grey() -> None:
    out = render(dataclasses.replace(BASE, style="noir"), 32, 32).astype(int)
    assert np.abs(out[..., 0] - out[..., 1]).max() == 0


def test_contact_sheet_stacks_large_and_small_renders() -> None:
    from imagineer.world.sheet import PAD, contact_sheet

    sheet = contact_sheet(
        [BASE, dataclasses.replace(BASE, style="neon")], large=24, small=16, cols=2
    )
    assert sheet.size == (2 * (24 + PAD) + PAD, 2 * (24 + PAD) + PAD)
    top_left = np.asarray(sheet)[PAD : PAD + 24, PAD : PAD + 24]
    assert np.array_equal(top_left, render(BASE, 24, 24))
    with pytest.raises(ValueError, match="at least one scene"):
        contact_sheet([])
