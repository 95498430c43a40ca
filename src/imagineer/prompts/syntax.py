"""Lexical rules shared by the parser, the formatter and request validation."""

from __future__ import annotations

import math
import re
from decimal import Decimal

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")

_EXT = r"\.(?:png|jpe?g|webp|gif)"
_IMAGE_URL_RE = re.compile(rf"https?://[^\s{{}}?#]+{_EXT}(?:[?#][^\s{{}}]*)?", re.IGNORECASE)
# A path needs one character before the extension and must not start with "-" (parameters do).
_IMAGE_PATH_RE = re.compile(rf"[^\s{{}}\-][^\s{{}}]*{_EXT}", re.IGNORECASE)
_URL_RE = re.compile(r"https?://", re.IGNORECASE)
_NAMED_IMAGE_RE = re.compile(r"job:[A-Za-z0-9_-]{1,64}(?:/[0-9]{1,4})?|upload:[A-Za-z0-9_-]{1,64}")
_PARAM_WORD_RE = re.compile(r"--([A-Za-z][^\s]*)")
# Phones and word processors turn "--" into a dash; "—ar 16:9" must not pass as text.
_DASH_WORD_RE = re.compile(r"[\u2012\u2013\u2014\u2015\u2212]{1,2}([A-Za-z]+)")
_ESCAPED_RE = re.compile(r"\\([{}])")
UNESCAPED_BRACE_RE = re.compile(r"(?<!\\)[{}]")

NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
INT_RE = re.compile(r"[+-]?[0-9]+")
# Longer digit strings are out of every range and slow to convert; refuse them early.
MAX_DIGITS = 30


def is_image_ref(word: str) -> bool:
    """True for an image URL or path ending in png, jpg, jpeg, webp or gif."""
    return bool(_IMAGE_URL_RE.fullmatch(word) or _IMAGE_PATH_RE.fullmatch(word))


def is_named_image(word: str) -> bool:
    """True for `job:ID`, `job:ID/INDEX` (an image of one of the caller's jobs) or `upload:ID`
    (an image the caller uploaded): the style references a server takes over HTTP."""
    return bool(_NAMED_IMAGE_RE.fullmatch(word))


def is_url(word: str) -> bool:
    """True for a word that starts like a web link."""
    return bool(_URL_RE.match(word))


def param_name(word: str) -> str | None:
    """The name in a parameter word (`--ar` -> `ar`), or None when the word is not one."""
    match = _PARAM_WORD_RE.fullmatch(word)
    return match.group(1) if match else None


def dash_param_name(word: str, known: frozenset[str]) -> str | None:
    """The known parameter a dash-led word (`—ar`) was meant to be, if any."""
    match = _DASH_WORD_RE.fullmatch(word)
    if match and match.group(1).lower() in known:
        return match.group(1).lower()
    return None


def escape(text: str) -> str:
    """Write literal braces as `\\{` and `\\}` so they do not read as permutations."""
    return text.replace("{", "\\{").replace("}", "\\}")


def unescape(raw: str) -> str:
    """Turn `\\{` and `\\}` back into literal braces."""
    return _ESCAPED_RE.sub(r"\1", raw)


def collapse(text: str) -> str:
    """Trim and join words with single spaces."""
    return " ".join(text.split())


def format_number(value: float) -> str:
    """Shortest plain decimal that reads back as exactly `value` (no exponent)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def parse_number(raw: str) -> float | None:
    """A finite float from plain decimal text, or None."""
    if not NUMBER_RE.fullmatch(raw):
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


def text_problem(text: object, known_params: frozenset[str]) -> str | None:
    """Why `text` cannot be one canonical prompt part, or None when it can."""
    if not isinstance(text, str):
        return f"must be a string, not {type(text).__name__}"
    if not text.strip():
        return "is empty"
    if text != collapse(text):
        return "must be trimmed, with single spaces between words"
    if "::" in text:
        return "contains '::', which separates weighted parts"
    for word in text.split():
        if param_name(word) is not None or dash_param_name(word, known_params):
            return f"contains {word}, which reads as a parameter"
    return None
