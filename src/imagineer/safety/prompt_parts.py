"""Splits a prompt just enough for the safety gate: {} permutations, --no and negative weights.

This is deliberately not the prompt parser (imagineer.prompts): the gate only needs to know
which spans of text are negated and which permutations exist, and it must not trust any
other syntax to hide words.
"""

from __future__ import annotations

import re

# "--no" as typed, or with the em/en dash that phones substitute for "--".
_NO_RE = re.compile(r"(?:--|—|–)no\b")
_PARAM_RE = re.compile(r"(?:--|—|–)[a-z]")
_WEIGHT_RE = re.compile(r"::(-?\d+(?:\.\d+)?)?")


def negated_spans(text: str) -> tuple[tuple[int, int], ...]:
    """Character ranges whose words the prompt asks to leave out: the value of each --no,
    and each part with a negative ::weight."""
    spans: list[tuple[int, int]] = []
    for match in _NO_RE.finditer(text):
        following = _PARAM_RE.search(text, match.end())
        spans.append((match.end(), following.start() if following else len(text)))
    part_start = 0
    for match in _WEIGHT_RE.finditer(text):
        weight = match.group(1)
        if weight is not None and float(weight) < 0:
            spans.append((part_start, match.start()))
        part_start = match.end()
    return tuple(sorted(spans))


def _matching_brace(text: str, open_at: int) -> int | None:
    depth = 0
    for index in range(open_at, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def _options(inner: str) -> list[str]:
    """Split the inside of {...} on commas that are not inside nested braces."""
    options, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            options.append(inner[start:index])
            start = index + 1
    options.append(inner[start:])
    return options


def expand_permutations(text: str, limit: int) -> tuple[tuple[str, ...], bool]:
    """Every {a, b} permutation of the text, at most `limit` of them; the flag says whether
    some were left out."""
    results: list[str] = []
    pending = [text]
    while pending:
        current = pending.pop()
        open_at = current.find("{")
        close_at = _matching_brace(current, open_at) if open_at >= 0 else None
        if close_at is None:
            results.append(current)
            if len(results) >= limit and pending:
                return tuple(results), True
            continue
        head, tail = current[:open_at], current[close_at + 1 :]
        for option in reversed(_options(current[open_at + 1 : close_at])):
            pending.append(head + option + tail)
        if len(pending) > 16 * limit:
            return tuple(results), True
    return tuple(results), False
