"""The parameter table: Midjourney's names, aliases and ranges, and how values read and write."""

from __future__ import annotations

import difflib
import enum
import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imagineer.prompts.syntax import (
    INT_RE,
    MAX_DIGITS,
    collapse,
    escape,
    format_number,
    is_image_ref,
    is_named_image,
    parse_number,
    text_problem,
    unescape,
)
from imagineer.prompts.weighted import MAX_WEIGHT, WeightedText

MAX_SEED = 2**32 - 1
MAX_ASPECT_SIDE = 10_000
# Widest and tallest ratio accepted: engines trained near square make poor images past 4:1.
MAX_RATIO = 4


class Arity(enum.Enum):
    """How many words follow a parameter's name."""

    FLAG = "no value"
    ONE = "one value"
    SOME = "one or more values"
    ANY = "any number of values"


class ValueProblem(Exception):
    """A value that cannot be read; `index` is the bad word among the values (None: all of them)."""

    def __init__(self, message: str, index: int | None = None, suggestion: str | None = None):
        super().__init__(message)
        self.message = message
        self.index = index
        self.suggestion = suggestion


def _closest(word: str, options: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(word.lower(), list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _seq(value: object) -> object:
    """Lists become tuples so that requests stay hashable; anything else is left for check()."""
    return tuple(value) if isinstance(value, list) else value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Codec:
    """Reads a parameter's words into a typed value, checks a value, writes it back as words."""

    arity = Arity.ONE

    def read(self, values: Sequence[str]) -> Any:
        raise NotImplementedError

    def check(self, value: object) -> str | None:
        raise NotImplementedError

    def write(self, value: Any) -> str:
        return str(value)

    def normalize(self, value: object) -> object:
        return value


@dataclass(frozen=True)
class IntRange(Codec):
    """A whole number from lo to hi."""

    lo: int
    hi: int

    def read(self, values: Sequence[str]) -> int:
        raw = values[0]
        if INT_RE.fullmatch(raw):
            if len(raw.lstrip("+-")) > MAX_DIGITS:
                raise ValueProblem(f"is out of range: use {self.lo}–{self.hi}", 0)
            return int(raw)
        kind = "a whole number" if parse_number(raw) is not None else "a number"
        raise ValueProblem(f"is not {kind}: use {self.lo}–{self.hi}", 0)

    def check(self, value: object) -> str | None:
        if not _is_int(value):
            return f"must be a whole number from {self.lo} to {self.hi}"
        if not self.lo <= value <= self.hi:  # type: ignore[operator]
            return f"is out of range: use {self.lo}–{self.hi}"
        return None


@dataclass(frozen=True)
class FloatRange(Codec):
    """A decimal number from lo to hi."""

    lo: float
    hi: float

    def read(self, values: Sequence[str]) -> float:
        value = parse_number(values[0])
        if value is None:
            raise ValueProblem(f"is not a number: use {self.span_text()}", 0)
        return value

    def check(self, value: object) -> str | None:
        if not _is_real(value) or not math.isfinite(value):  # type: ignore[arg-type]
            return f"must be a number from {self.span_text()}"
        if not self.lo <= value <= self.hi:  # type: ignore[operator]
            return f"is out of range: use {self.span_text()}"
        return None

    def write(self, value: float) -> str:
        return format_number(value)

    def normalize(self, value: object) -> object:
        return float(value) if _is_int(value) else value  # type: ignore[arg-type]

    def span_text(self) -> str:
        return f"{format_number(self.lo)}–{format_number(self.hi)}"


@dataclass(frozen=True)
class Levels(Codec):
    """One of a few allowed numbers."""

    levels: tuple[float, ...]
    what: str

    def read(self, values: Sequence[str]) -> float:
        value = parse_number(values[0])
        if value is None:
            raise ValueProblem(f"is not a number: use {self.choices()}", 0)
        return value

    def check(self, value: object) -> str | None:
        if not _is_real(value) or value not in self.levels:
            return f"is not {self.what}: use {self.choices()}"
        return None

    def write(self, value: float) -> str:
        return format_number(value)

    def normalize(self, value: object) -> object:
        return float(value) if _is_int(value) else value  # type: ignore[arg-type]

    def choices(self) -> str:
        words = [format_number(level) for level in self.levels]
        return ", ".join(words[:-1]) + " or " + words[-1]


@dataclass(frozen=True)
class Choice(Codec):
    """One of a few words."""

    options: tuple[str, ...]

    def read(self, values: Sequence[str]) -> str:
        raw = values[0]
        if raw not in self.options:
            raise ValueProblem(self._problem(), 0, _closest(raw, self.options))
        return raw

    def check(self, value: object) -> str | None:
        return None if value in self.options else self._problem()

    def _problem(self) -> str:
        return "is not allowed: use " + " or ".join(self.options)


@dataclass(frozen=True)
class Flag(Codec):
    """On when present."""

    arity = Arity.FLAG

    def read(self, values: Sequence[str]) -> bool:
        return True

    def check(self, value: object) -> str | None:
        return None if isinstance(value, bool) else "must be True or False"

    def write(self, value: bool) -> str:
        return ""


@dataclass(frozen=True)
class Style(Codec):
    """`--style raw`, another spelling of `--raw`."""

    def read(self, values: Sequence[str]) -> bool:
        if values[0] != "raw":
            problem = "is not a style imagineer knows: only --style raw is supported"
            raise ValueProblem(problem, 0, _closest(values[0], ("raw",)))
        return True

    def check(self, value: object) -> str | None:
        return None if isinstance(value, bool) else "must be True or False"


@dataclass(frozen=True)
class Aspect(Codec):
    """`W:H` in positive whole numbers, no wider than 4:1 and no taller than 1:4."""

    def read(self, values: Sequence[str]) -> tuple[int, int]:
        raw = values[0]
        match = re.fullmatch(r"([0-9]{1,30}):([0-9]{1,30})", raw)
        if match is None:
            near = re.fullmatch(r"([0-9]+)\s*[xX×/*]\s*([0-9]+)", raw)
            hint = f"{near.group(1)}:{near.group(2)}" if near else None
            raise ValueProblem("is not an aspect ratio: write width:height, like 16:9", 0, hint)
        return int(match.group(1)), int(match.group(2))

    def check(self, value: object) -> str | None:
        if not (isinstance(value, tuple) and len(value) == 2 and all(map(_is_int, value))):
            return "must be two whole numbers, width and height"
        width, height = value
        if width < 1 or height < 1:
            return "must have positive sides, like 16:9"
        if width > MAX_ASPECT_SIDE or height > MAX_ASPECT_SIDE:
            return f"is too large: keep each side at most {MAX_ASPECT_SIDE}, like 16:9"
        if width > MAX_RATIO * height:
            return f"is wider than {MAX_RATIO}:1: use a ratio from 1:{MAX_RATIO} to {MAX_RATIO}:1"
        if height > MAX_RATIO * width:
            return f"is taller than 1:{MAX_RATIO}: use a ratio from 1:{MAX_RATIO} to {MAX_RATIO}:1"
        return None

    def write(self, value: tuple[int, int]) -> str:
        return f"{value[0]}:{value[1]}"

    def normalize(self, value: object) -> object:
        return _seq(value)


@dataclass(frozen=True)
class Pattern(Codec):
    """A word matching a regular expression."""

    regex: str
    what: str

    def read(self, values: Sequence[str]) -> str:
        if self.check(values[0]) is not None:
            raise ValueProblem(f"is not {self.what}", 0)
        return values[0]

    def check(self, value: object) -> str | None:
        ok = isinstance(value, str) and re.fullmatch(self.regex, value)
        return None if ok else f"is not {self.what}"


IMAGE_WHAT = "an image link or path ending in .png, .jpg, .jpeg, .webp or .gif"


@dataclass(frozen=True)
class Image(Codec):
    """An image URL or path."""

    def read(self, values: Sequence[str]) -> str:
        if not is_image_ref(values[0]):
            raise ValueProblem(f"is not {IMAGE_WHAT}", 0)
        return values[0]

    def check(self, value: object) -> str | None:
        return None if isinstance(value, str) and is_image_ref(value) else f"is not {IMAGE_WHAT}"


def _ref_problem(ref: str) -> str | None:
    named = is_named_image(ref)
    if "::" in ref or not (is_image_ref(ref) or named or re.fullmatch(r"[0-9]{1,30}", ref)):
        return (
            f"is not a style reference: use {IMAGE_WHAT}, upload:ID, job:ID/INDEX, "
            "or a numeric style code"
        )
    return None


@dataclass(frozen=True)
class Refs(Codec):
    """Style references (`--sref`): image links, paths, `upload:ID`, `job:ID/INDEX` or numeric
    codes, each maybe `::weight`."""

    arity = Arity.SOME

    def read(self, values: Sequence[str]) -> tuple[WeightedText, ...]:
        refs = []
        for index, raw in enumerate(values):
            ref, sep, weight_text = raw.rpartition("::")
            weight = parse_number(weight_text) if sep else 1.0
            if not sep:
                ref = raw
            if weight is None:
                raise ValueProblem("has a bad weight: write ref::2 or ref::0.5", index)
            if abs(weight) > MAX_WEIGHT:
                raise ValueProblem("has a weight out of range: use -1000–1000", index)
            problem = _ref_problem(ref)
            if problem is not None:
                raise ValueProblem(problem, index)
            refs.append(WeightedText(ref, weight))
        return tuple(refs)

    def check(self, value: object) -> str | None:
        if not isinstance(value, tuple) or not all(isinstance(v, WeightedText) for v in value):
            return "must be a tuple of WeightedText"
        problems = (_ref_problem(ref.text) for ref in value)
        return next((problem for problem in problems if problem is not None), None)

    def write(self, value: tuple[WeightedText, ...]) -> str:
        return " ".join(
            ref.text if ref.weight == 1 else f"{ref.text}::{format_number(ref.weight)}"
            for ref in value
        )

    def normalize(self, value: object) -> object:
        return _seq(value)


_CODE_RE = r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}"


@dataclass(frozen=True)
class Codes(Codec):
    """Personalization codes (`--p`), possibly none."""

    arity = Arity.ANY

    def read(self, values: Sequence[str]) -> tuple[str, ...]:
        for index, raw in enumerate(values):
            if not re.fullmatch(_CODE_RE, raw):
                raise ValueProblem("is not a personalization code (letters and digits)", index)
        return tuple(values)

    def check(self, value: object) -> str | None:
        ok = isinstance(value, tuple) and all(
            isinstance(code, str) and re.fullmatch(_CODE_RE, code) for code in value
        )
        return None if ok else "must be a tuple of personalization codes (letters and digits)"

    def write(self, value: tuple[str, ...]) -> str:
        return " ".join(value)

    def normalize(self, value: object) -> object:
        return _seq(value)


def item_problem(item: object) -> str | None:
    """Why `item` cannot be one `--no` item, or None when it can."""
    problem = text_problem(item, all_names())
    if problem is None and "," in item:  # type: ignore[operator]
        return "contains a comma, which separates --no items"
    return problem


@dataclass(frozen=True)
class NoItems(Codec):
    """`--no a, b`: things to keep out of the image, separated by commas."""

    arity = Arity.SOME

    def read(self, values: Sequence[str]) -> tuple[str, ...]:
        items: list[str] = []
        current: list[str] = []
        for index, word in enumerate(values):
            pieces = word.split(",")
            for position, piece in enumerate(pieces):
                if piece:
                    current.append(piece)
                if position < len(pieces) - 1:  # a comma ends the current item
                    items.append(self._finish(current, index))
                    current = []
        # A trailing comma leaves an empty last item, which _finish refuses.
        items.append(self._finish(current, len(values) - 1))
        return tuple(items)

    def _finish(self, words: list[str], index: int) -> str:
        item = collapse(unescape(" ".join(words)))
        if not item:
            raise ValueProblem("has an empty item: separate items with single commas", index)
        problem = item_problem(item)
        if problem is not None:
            raise ValueProblem(f"has an item that {problem}", index)
        return item

    def check(self, value: object) -> str | None:
        if not isinstance(value, tuple):
            return "must be a tuple of strings"
        problems = (item_problem(item) for item in value)
        problem = next((p for p in problems if p is not None), None)
        return None if problem is None else f"has an item that {problem}"

    def write(self, value: tuple[str, ...]) -> str:
        return ", ".join(escape(item) for item in value)

    def normalize(self, value: object) -> object:
        return _seq(value)


@dataclass(frozen=True)
class Maybe(Codec):
    """`inner`, or None when the parameter is left out."""

    inner: Codec

    @property
    def arity(self) -> Arity:  # type: ignore[override]
        return self.inner.arity

    def read(self, values: Sequence[str]) -> Any:
        return self.inner.read(values)

    def check(self, value: object) -> str | None:
        return None if value is None else self.inner.check(value)

    def write(self, value: Any) -> str:
        return self.inner.write(value)

    def normalize(self, value: object) -> object:
        return None if value is None else self.inner.normalize(value)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: the Params field it sets, its names (canonical first) and its codec."""

    field: str
    names: tuple[str, ...]
    codec: Codec
    example: str  # a valid value, shown when the value is missing
    meaning: str
    alternate: bool = False  # another spelling of a field that a main spec writes (--style raw)

    @property
    def name(self) -> str:
        return self.names[0]


@functools.cache
def specs() -> tuple[ParamSpec, ...]:
    """Every parameter, in the order format_request writes them."""
    return (
        ParamSpec("aspect", ("ar", "aspect"), Aspect(), "16:9", "width:height of the output"),
        ParamSpec("seed", ("seed",), Maybe(IntRange(0, MAX_SEED)), "42", "noise seed"),
        ParamSpec("chaos", ("chaos", "c"), IntRange(0, 100), "50", "variety across a grid"),
        ParamSpec("stylize", ("stylize", "s"), IntRange(0, 1000), "250", "strength of style"),
        ParamSpec("weird", ("weird", "w"), IntRange(0, 3000), "250", "unconventional looks"),
        ParamSpec(
            "quality",
            ("quality", "q"),
            Levels((0.25, 0.5, 1.0, 2.0, 4.0), "a quality level"),
            "2",
            "render effort",
        ),
        ParamSpec("tile", ("tile",), Flag(), "", "seamless repeating tile"),
        ParamSpec("raw", ("raw",), Flag(), "", "less automatic beautifying"),
        ParamSpec("raw", ("style",), Style(), "raw", "--style raw means --raw", alternate=True),
        ParamSpec("repeat", ("repeat", "r"), IntRange(1, 40), "4", "run the prompt N times"),
        ParamSpec("iw", ("iw",), FloatRange(0.0, 3.0), "1.5", "image prompt weight"),
        ParamSpec("sref", ("sref",), Refs(), "https://example.com/style.png", "style references"),
        ParamSpec("sw", ("sw",), IntRange(0, 1000), "200", "style reference weight"),
        ParamSpec("personalize", ("p", "personalize"), Maybe(Codes()), "", "personalization codes"),
        ParamSpec(
            "version",
            ("v", "version"),
            Maybe(Pattern(r"[0-9]{1,4}(?:\.[0-9]{1,4})?", "a version number like 6, 6.1 or 7")),
            "7",
            "model version",
        ),
        ParamSpec(
            "model",
            ("model",),
            Maybe(Pattern(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}", "a model name")),
            "embedded",
            "registered model to use",
        ),
        ParamSpec("draft", ("draft",), Flag(), "", "fast, cheap draft"),
        ParamSpec("video", ("video",), Flag(), "", "make a short video"),
        ParamSpec("motion", ("motion",), Choice(("low", "high")), "high", "video motion"),
        ParamSpec("loop", ("loop",), Flag(), "", "video ends where it starts"),
        ParamSpec("end", ("end",), Maybe(Image()), "./last.png", "video end frame"),
        ParamSpec("stop", ("stop",), IntRange(10, 100), "80", "stop early, in percent"),
        ParamSpec("no", ("no",), NoItems(), "text, people", "things to keep out"),
    )


@functools.cache
def all_names() -> frozenset[str]:
    """Every parameter name and alias, without the leading --."""
    return frozenset(name for spec in specs() for name in spec.names)


def lookup(name: str) -> ParamSpec | None:
    """The spec called `name` (without --), or None."""
    return next((spec for spec in specs() if name in spec.names), None)


# Midjourney parameters a user may bring along; refusing them by name beats "unknown".
UNSUPPORTED = frozenset(
    {"cref", "cw", "oref", "ow", "niji", "hd", "fast", "relax", "turbo", "public", "stealth"}
    | {"exp", "sv", "bs", "sameseed", "upbeta", "uplight", "test", "testp", "creative"}
)
