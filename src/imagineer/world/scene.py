"""The procedural world's ground truth: scene attributes, sampling and the held-out split."""

from __future__ import annotations

import functools
import hashlib
import itertools
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

TIMES = ("dawn", "noon", "sunset", "dusk", "night")
WEATHERS = ("clear", "cloudy", "foggy", "rainy", "snowy")
LANDSCAPES = ("mountains", "hills", "sea", "desert", "forest")
CITIES = ("none", "skyline", "futuristic")
KINDS = ("flying_car", "bird", "balloon", "boat", "tree", "house")
COLOURS = ("red", "yellow", "green", "blue", "purple", "white")
COUNTS = (1, 2, 3)
POSITIONS = ("left", "center", "right")
STYLES = ("photo", "neon", "pastel", "noir", "watercolor", "pixel_art")

SKY_KINDS = ("flying_car", "bird", "balloon")
GROUND_KINDS = ("boat", "tree", "house")

SPLITS = ("train", "test")
HELD_OUT_FRACTION = 0.1
# Salt of the held-out hash: chosen once so that every kind, colour, count and position value
# occurs among the held-out combinations (checked by the tests). Changing it changes the split.
_HELD_OUT_SALT = "imagineer-world-v1"

OBJECT_PROBABILITY = 0.85
PHOTO_PROBABILITY = 0.5
SEED_LIMIT = 2**31


class Attribute(NamedTuple):
    """One categorical attribute of a scene and its values, in a fixed order."""

    name: str
    values: tuple[str | int, ...]


# Every categorical attribute a judge can score; object attributes are flattened. Only
# object_kind has a "none" value: colour, count and position are undefined without objects.
ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("time", TIMES),
    Attribute("weather", WEATHERS),
    Attribute("landscape", LANDSCAPES),
    Attribute("city", CITIES),
    Attribute("object_kind", ("none", *KINDS)),
    Attribute("object_colour", COLOURS),
    Attribute("object_count", COUNTS),
    Attribute("object_position", POSITIONS),
    Attribute("style", STYLES),
)
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES)


def _check(name: str, value: object, allowed: tuple[Any, ...]) -> None:
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not a valid value; use one of {allowed}")


@dataclass(frozen=True)
class ObjectGroup:
    """A group of identical objects placed together in one third of the frame."""

    kind: str  # one of KINDS
    colour: str  # one of COLOURS
    count: int  # 1, 2 or 3
    position: str  # "left", "center" or "right": the third of the frame holding the group

    def __post_init__(self) -> None:
        _check("kind", self.kind, KINDS)
        _check("colour", self.colour, COLOURS)
        _check("count", self.count, COUNTS)
        _check("position", self.position, POSITIONS)

    @property
    def in_sky(self) -> bool:
        return self.kind in SKY_KINDS


@dataclass(frozen=True)
class Scene:
    """Everything that decides a render: categorical attributes plus a seed for the details."""

    time: str = "noon"
    weather: str = "clear"
    landscape: str = "hills"
    city: str = "none"
    objects: ObjectGroup | None = None
    style: str = "photo"
    seed: int = 0  # cloud shapes, building heights, star positions, offsets within the third

    def __post_init__(self) -> None:
        _check("time", self.time, TIMES)
        _check("weather", self.weather, WEATHERS)
        _check("landscape", self.landscape, LANDSCAPES)
        _check("city", self.city, CITIES)
        _check("style", self.style, STYLES)
        if self.objects is not None and not isinstance(self.objects, ObjectGroup):
            raise ValueError(f"objects={self.objects!r} must be an ObjectGroup or None")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ValueError(f"seed={self.seed!r} must be an int")
        if not 0 <= int(self.seed) < 2**63:
            raise ValueError(f"seed={self.seed!r} must be in [0, 2**63)")

    def value(self, attribute: str) -> str | int | None:
        """The scene's value for one name of ATTRIBUTE_NAMES (None: no objects to describe)."""
        if attribute not in ATTRIBUTE_NAMES:
            raise ValueError(f"unknown attribute {attribute!r}; use one of {ATTRIBUTE_NAMES}")
        if not attribute.startswith("object_"):
            return getattr(self, attribute)
        if self.objects is None:
            return "none" if attribute == "object_kind" else None
        return getattr(self.objects, attribute.removeprefix("object_"))

    def labels(self) -> tuple[int | None, ...]:
        """Index of each attribute's value in ATTRIBUTES order (None where undefined)."""
        out: list[int | None] = []
        for attr in ATTRIBUTES:
            v = self.value(attr.name)
            out.append(None if v is None else attr.values.index(v))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        objects = None
        if self.objects is not None:
            o = self.objects
            objects = {"kind": o.kind, "colour": o.colour, "count": o.count, "position": o.position}
        return {
            "time": self.time,
            "weather": self.weather,
            "landscape": self.landscape,
            "city": self.city,
            "objects": objects,
            "style": self.style,
            "seed": int(self.seed),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        expected = {"time", "weather", "landscape", "city", "objects", "style", "seed"}
        unknown = set(data) - expected
        if unknown:
            raise ValueError(f"unknown scene keys {sorted(unknown)}; expected {sorted(expected)}")
        fields = dict(data)
        obj = fields.get("objects")
        if obj is not None:
            if not isinstance(obj, dict):
                raise ValueError(f"objects={obj!r} must be a mapping or None")
            fields["objects"] = ObjectGroup(**obj)
        return cls(**fields)


def _combo_rank(kind: str, colour: str, count: int, position: str) -> str:
    key = f"{_HELD_OUT_SALT}|{kind}|{colour}|{count}|{position}"
    return hashlib.sha256(key.encode()).hexdigest()


def all_combinations() -> tuple[tuple[str, str, int, str], ...]:
    """Every (kind, colour, count, position) combination, in a fixed order."""
    return tuple(itertools.product(KINDS, COLOURS, COUNTS, POSITIONS))


@functools.cache
def held_out_combinations() -> tuple[tuple[str, str, int, str], ...]:
    """The deterministic 10% of object combinations reserved for the test split."""
    combos = sorted(all_combinations(), key=lambda c: _combo_rank(*c))
    n = round(len(combos) * HELD_OUT_FRACTION)
    return tuple(sorted(combos[:n], key=all_combinations().index))


@functools.cache
def _held_out_set() -> frozenset[tuple[str, str, int, str]]:
    return frozenset(held_out_combinations())


@functools.cache
def _train_combinations() -> tuple[tuple[str, str, int, str], ...]:
    held = _held_out_set()
    return tuple(c for c in all_combinations() if c not in held)


def is_held_out(kind: str, colour: str, count: int, position: str) -> bool:
    """Whether this object combination is reserved for the test split (never trained on)."""
    ObjectGroup(kind, colour, count, position)  # validates the values
    return (kind, colour, count, position) in _held_out_set()


def sample_scene(rng: np.random.Generator, *, split: str = "train") -> Scene:
    """Draw a random scene; "test" scenes always hold a held-out object combination."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; use one of {SPLITS}")
    time = TIMES[rng.integers(len(TIMES))]
    weather = WEATHERS[rng.integers(len(WEATHERS))]
    landscape = LANDSCAPES[rng.integers(len(LANDSCAPES))]
    city = CITIES[rng.integers(len(CITIES))]
    if rng.random() < PHOTO_PROBABILITY:
        style = "photo"
    else:
        style = STYLES[1 + rng.integers(len(STYLES) - 1)]
    objects: ObjectGroup | None = None
    if split == "test":
        combos = held_out_combinations()
        objects = ObjectGroup(*combos[rng.integers(len(combos))])
    elif rng.random() < OBJECT_PROBABILITY:
        combos = _train_combinations()
        objects = ObjectGroup(*combos[rng.integers(len(combos))])
    seed = int(rng.integers(SEED_LIMIT))
    return Scene(time, weather, landscape, city, objects, style, seed)
