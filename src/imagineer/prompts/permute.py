"""`{a, b}` permutations: expand text into variants that remember where each character came from."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from imagineer.prompts.errors import PromptError

# Deeper nesting is never meant; the bound keeps the recursive reader safe.
MAX_DEPTH = 16


@dataclass(frozen=True)
class Group:
    """One `{…}`: its alternatives (each a sequence of items) and its span in the text."""

    alternatives: tuple[tuple[Item, ...], ...]
    span: tuple[int, int]


@dataclass(frozen=True)
class Literal:
    """A run of text outside any braces of this level, as a span of the original."""

    span: tuple[int, int]


Item = Literal | Group


@dataclass(frozen=True)
class Variant:
    """One expanded prompt; origin[i] is where text[i] sits in the original text."""

    text: str
    origin: tuple[int, ...]

    def original_span(self, span: tuple[int, int]) -> tuple[int, int]:
        """Map a span of this variant's text back onto the original text."""
        if not self.origin:
            return (0, 0)
        start, end = span
        first = self.origin[start] if start < len(self.origin) else self.origin[-1] + 1
        last = self.origin[end - 1] + 1 if end > start else first
        return first, max(first, last)


def read_groups(text: str) -> tuple[Item, ...]:
    """The text as literals and brace groups; raises PromptError on unbalanced braces."""
    items, pos = _read_sequence(text, 0, 0)
    if pos < len(text):  # only a stray "}" stops the top level early
        raise PromptError(
            "unmatched }: write \\} for a literal brace", text=text, span=(pos, pos + 1)
        )
    return items


def _read_sequence(text: str, pos: int, depth: int) -> tuple[tuple[Item, ...], int]:
    items: list[Item] = []
    start = pos
    while pos < len(text):
        char = text[pos]
        if char == "\\" and text[pos + 1 : pos + 2] in ("{", "}"):
            pos += 2
            continue
        if char == "}" or (char == "," and depth > 0):
            break
        if char == "{":
            if pos > start:
                items.append(Literal((start, pos)))
            group, pos = _read_group(text, pos, depth + 1)
            items.append(group)
            start = pos
            continue
        pos += 1
    if pos > start:
        items.append(Literal((start, pos)))
    return tuple(items), pos


def _read_group(text: str, open_pos: int, depth: int) -> tuple[Group, int]:
    if depth > MAX_DEPTH:
        raise PromptError(
            f"{{…}} nested more than {MAX_DEPTH} deep", text=text, span=(open_pos, open_pos + 1)
        )
    alternatives = []
    pos = open_pos + 1
    while True:
        items, pos = _read_sequence(text, pos, depth)
        alternatives.append(items)
        if pos >= len(text):
            raise PromptError(
                "unclosed {: close it with } or write \\{ for a literal brace",
                text=text,
                span=(open_pos, open_pos + 1),
            )
        if text[pos] == "}":
            break
        pos += 1  # past the comma
    span = (open_pos, pos + 1)
    if len(alternatives) == 1 and not text[open_pos + 1 : pos].strip():
        raise PromptError("empty {}: list options like {red, blue}", text=text, span=span)
    return Group(tuple(alternatives), span), pos + 1


def count(items: tuple[Item, ...]) -> int:
    """How many variants a sequence expands to."""
    return math.prod(
        sum(count(alternative) for alternative in item.alternatives)
        for item in items
        if isinstance(item, Group)
    )


def expand(text: str, *, limit: int) -> list[Variant]:
    """All variants of `text`, in reading order; refuses to make more than `limit`."""
    items = read_groups(text)
    total = count(items)
    if total > limit:
        groups = [item.span for item in items if isinstance(item, Group)]
        raise PromptError(
            f"these permutations make {total} prompts, more than the limit of {limit}: "
            "remove some options or raise max_requests",
            text=text,
            span=(groups[0][0], groups[-1][1]),
        )
    return [Variant("".join(text[i] for i in idx), idx) for idx in _expand(text, items)]


def _expand(text: str, items: tuple[Item, ...]) -> list[tuple[int, ...]]:
    choices: list[list[tuple[int, ...]]] = []
    for item in items:
        if isinstance(item, Literal):
            choices.append([tuple(range(*item.span))])
            continue
        options = []
        for alternative in item.alternatives:
            # Spaces around an option belong to the list syntax, not to the option.
            options += [_trim(text, v) for v in _expand(text, alternative)]
        choices.append(options)
    return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*choices)]


def _trim(text: str, indices: tuple[int, ...]) -> tuple[int, ...]:
    start, end = 0, len(indices)
    while start < end and text[indices[start]].isspace():
        start += 1
    while end > start and text[indices[end - 1]].isspace():
        end -= 1
    return indices[start:end]
