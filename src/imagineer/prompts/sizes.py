"""Map an aspect ratio to a pixel size an engine can render."""

from __future__ import annotations

import math

from imagineer.prompts.params import Aspect

# How much a 1% area miss costs against a 1% ratio miss: the ratio is what the user asked for.
AREA_COST = 0.25
# Candidates looked at on each side of the ideal size, in multiples.
_WINDOW = 3


def size_for_aspect(aspect: tuple[int, int], *, area: int, multiple: int) -> tuple[int, int]:
    """(width, height), both multiples of `multiple`, with width*height near `area` and
    width/height as close to aspect[0]/aspect[1] as that allows.

    >>> size_for_aspect((16, 9), area=1024 * 1024, multiple=64)
    (1344, 768)
    """
    problem = Aspect().check(tuple(aspect) if isinstance(aspect, list) else aspect)
    if problem is not None:
        raise ValueError(f"aspect {aspect!r} {problem}")
    for name, value in (("area", area), ("multiple", multiple)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    if area < multiple * multiple:
        raise ValueError(f"area {area} is smaller than one {multiple}x{multiple} block")
    ratio = aspect[0] / aspect[1]
    ideal_w = math.sqrt(area * ratio) / multiple
    ideal_h = math.sqrt(area / ratio) / multiple

    def cost(w: int, h: int) -> float:
        ratio_miss = abs(math.log(w / h / ratio))
        area_miss = abs(math.log(w * h * multiple * multiple / area))
        return ratio_miss + AREA_COST * area_miss

    # Never more than twice the pixels asked for: the area is also a memory budget.
    budget = 2 * area
    candidates = [
        (w, h)
        for w in _around(ideal_w)
        for h in _around(ideal_h)
        if w * h * multiple * multiple <= budget
    ]
    # Ties go to the larger image, then the wider one, so the choice is deterministic.
    w, h = min(candidates, key=lambda c: (cost(*c), -c[0] * c[1], -c[0]))
    return w * multiple, h * multiple


def _around(ideal: float) -> range:
    return range(max(1, math.floor(ideal) - _WINDOW), math.ceil(ideal) + _WINDOW + 1)
