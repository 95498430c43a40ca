"""size_for_aspect: pixel sizes in multiples, near the area, as close to the ratio as they allow."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagineer.prompts import size_for_aspect
from imagineer.prompts.sizes import AREA_COST


@pytest.mark.parametrize(
    ("aspect", "size"),
    [
        ((1, 1), (1024, 1024)),
        ((16, 9), (1344, 768)),
        ((9, 16), (768, 1344)),
        ((4, 1), (2048, 512)),
        ((1, 4), (512, 2048)),
        ((2, 2), (1024, 1024)),
    ],
)
def test_known_sizes_at_one_megapixel(aspect: tuple[int, int], size: tuple[int, int]) -> None:
    assert size_for_aspect(aspect, area=1024 * 1024, multiple=64) == size


def test_small_engine_sizes() -> None:
    assert size_for_aspect((1, 1), area=32 * 32, multiple=8) == (32, 32)
    assert size_for_aspect((16, 9), area=512 * 512, multiple=8) == (680, 384)


def test_never_more_than_twice_the_area() -> None:
    # One 64x64 block: 4:1 cannot be met, and 256x64 would be four times the budget.
    assert size_for_aspect((4, 1), area=64 * 64, multiple=64) == (128, 64)


@st.composite
def cases(draw: st.DrawFn) -> tuple[tuple[int, int], int, int]:
    multiple = draw(st.sampled_from([1, 8, 16, 32, 64]))
    height = draw(st.integers(1, 60))
    width = draw(st.integers(-(-height // 4), 4 * height))
    # The short side gets 16 to 48 blocks; the area is within 25% of that.
    short = draw(st.integers(16, 48)) * multiple
    stretch = max(width / height, height / width) * draw(st.floats(0.8, 1.25))
    return (width, height), int(short * short * stretch), multiple


@settings(deadline=None, max_examples=200)
@given(cases())
def test_sizes_are_multiples_near_the_area_and_ratio(
    case: tuple[tuple[int, int], int, int],
) -> None:
    aspect, area, multiple = case
    width, height = size_for_aspect(aspect, area=area, multiple=multiple)
    assert width % multiple == 0 and height % multiple == 0
    assert width * height <= 2 * area
    # 30,000 random cases like these measured at most 3.4% off the ratio and 9.1% off the area.
    assert abs(math.log(width / height / (aspect[0] / aspect[1]))) < 0.05
    assert abs(math.log(width * height / area)) < 0.12


def _cost(w: int, h: int, aspect: tuple[int, int], area: int) -> float:
    ratio = aspect[0] / aspect[1]
    return abs(math.log(w / h / ratio)) + AREA_COST * abs(math.log(w * h / area))


@settings(deadline=None, max_examples=100)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 64), st.sampled_from([8, 16]))
def test_result_is_the_best_of_all_sizes_under_the_budget(
    a: int, b: int, blocks: int, multiple: int
) -> None:
    aspect = (max(a, -(-b // 4)), b) if a <= 4 * b else (4 * b, b)
    area = blocks * multiple * multiple
    width, height = size_for_aspect(aspect, area=area, multiple=multiple)
    best = min(
        _cost(w * multiple, h * multiple, aspect, area)
        for w in range(1, 2 * blocks + 1)
        for h in range(1, 2 * blocks // w + 1)
    )
    assert _cost(width, height, aspect, area) <= best + 1e-12


@pytest.mark.parametrize(
    ("aspect", "area", "multiple", "says"),
    [
        ((5, 1), 1024 * 1024, 64, "wider than 4:1"),
        ((1, 5), 1024 * 1024, 64, "taller than 1:4"),
        ((0, 1), 1024 * 1024, 64, "positive sides"),
        ((1.5, 1), 1024 * 1024, 64, "whole numbers"),
        ((1, 1), 1000, 64, "smaller than one 64x64 block"),
        ((1, 1), 1024, 0, "multiple must be a positive whole number"),
        ((1, 1), True, 8, "area must be a positive whole number"),
    ],
)
def test_bad_arguments_say_why(
    aspect: tuple[int, int], area: int, multiple: int, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        size_for_aspect(aspect, area=area, multiple=multiple)
