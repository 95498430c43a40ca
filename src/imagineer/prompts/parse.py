"""Read Midjourney-style prompt text into Requests, with errors that point at the bad token."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from imagineer.prompts import permute
from imagineer.prompts.errors import PromptError
from imagineer.prompts.params import (
    IMAGE_WHAT,
    MAX_SEED,
    UNSUPPORTED,
    Arity,
    ParamSpec,
    ValueProblem,
    all_names,
    lookup,
)
from imagineer.prompts.request import (
    Params,
    Request,
    content_problem,
    video_conflict,
    weights_problem,
)
from imagineer.prompts.syntax import (
    collapse,
    dash_param_name,
    is_image_ref,
    is_url,
    param_name,
    text_problem,
    unescape,
)
from imagineer.prompts.weighted import MAX_WEIGHT, WeightedText

Span = tuple[int, int]

# A weight right after "::" (spaces allowed), ended by a space or the end of the text.
_WEIGHT_RE = re.compile(r"\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?=\s|$)")
# Something glued to "::" that starts like a number but is not one, e.g. "::2x".
_BAD_WEIGHT_RE = re.compile(r"[+\-.0-9]\S*")


@dataclass(frozen=True)
class _Word:
    raw: str
    start: int
    end: int


@dataclass(frozen=True)
class _Read:
    """A parsed request and where each given parameter (`--name value…`) sits in the text."""

    request: Request
    spans: dict[str, Span]


def parse(text: str) -> Request:
    """Read one prompt. `{…}` permutations are refused here: use parse_all for them."""
    _require_str(text)
    items = permute.read_groups(text)
    groups = [item for item in items if isinstance(item, permute.Group)]
    if groups:
        start, end = groups[0].span
        raise PromptError(
            f"{text[start:end]} is a permutation; the prompt makes {permute.count(items)} prompts: "
            "use parse_all",
            text=text,
            span=(start, end),
        )
    return _read(text).request


def parse_all(text: str, *, max_requests: int = 40) -> list[Request]:
    """Read a prompt, expanding `{…}` permutations and --repeat into one request each.

    Expanded requests have repeat=1; with --seed S the i-th repeat gets seed S+i.
    """
    _require_str(text)
    if isinstance(max_requests, bool) or not isinstance(max_requests, int) or max_requests < 1:
        raise ValueError(f"max_requests must be a whole number of at least 1, got {max_requests!r}")
    variants = permute.expand(text, limit=max_requests)
    reads = [_read_variant(text, variant, several=len(variants) > 1) for variant in variants]
    total = sum(read.request.params.repeat for read, _ in reads)
    if total > max_requests:
        read, variant = next((r, v) for r, v in reads if r.request.params.repeat > 1)
        raise PromptError(
            f"--repeat {read.request.params.repeat} makes {total} prompts in all, more than the "
            f"limit of {max_requests}: lower --repeat or raise max_requests",
            text=text,
            span=variant.original_span(read.spans["repeat"]),
        )
    requests: list[Request] = []
    for read, variant in reads:
        requests += _repeat(text, read, variant)
    return requests


def _require_str(text: object) -> None:
    if not isinstance(text, str):
        raise TypeError(f"a prompt must be a str, got {type(text).__name__}")


def _read_variant(
    text: str, variant: permute.Variant, *, several: bool
) -> tuple[_Read, permute.Variant]:
    try:
        return _read(variant.text), variant
    except PromptError as err:
        where = f" (in the variant: {collapse(variant.text)})" if several else ""
        raise PromptError(
            err.message + where,
            text=text,
            span=variant.original_span(err.span),
            suggestion=err.suggestion,
        ) from None


def _repeat(text: str, read: _Read, variant: permute.Variant) -> list[Request]:
    request = read.request
    times, seed = request.params.repeat, request.params.seed
    if times == 1:
        return [request]
    if seed is not None and seed + times - 1 > MAX_SEED:
        raise PromptError(
            f"--seed {seed} with --repeat {times} runs past {MAX_SEED}: "
            f"use a seed up to {MAX_SEED - times + 1}",
            text=text,
            span=variant.original_span(read.spans["seed"]),
        )
    return [
        request.with_params(repeat=1, seed=None if seed is None else seed + i) for i in range(times)
    ]


def _read(text: str) -> _Read:
    """Parse text free of permutations: image prompts, weighted text, then parameters."""
    words = [_Word(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    _refuse_dashes(text, words)
    first = next((i for i, w in enumerate(words) if param_name(w.raw) is not None), len(words))
    images, rest = _split_images(text, words[:first])
    parts, text_span = _read_parts(text, rest)
    values, spans = _read_params(text, words[first:])
    gap = words[first].start if first < len(words) else len(text)
    _check_whole(text, images, parts, values, spans, text_span or (gap, gap))
    params = Params(**values)
    return _Read(Request(tuple(images), tuple(part for part, _ in parts), params), spans)


def _refuse_dashes(text: str, words: list[_Word]) -> None:
    for word in words:
        name = dash_param_name(word.raw, all_names())
        if name is not None:
            raise PromptError(
                f"{word.raw} starts with a dash, not two hyphens",
                text=text,
                span=(word.start, word.end),
                suggestion=f"--{name}",
            )


def _split_images(text: str, words: list[_Word]) -> tuple[list[str], list[_Word]]:
    """Leading image links and paths, and the words after them."""
    for index, word in enumerate(words):
        if is_image_ref(word.raw):
            continue
        if is_url(word.raw):
            raise PromptError(
                f"{word.raw} is not an image: image prompts are {IMAGE_WHAT}",
                text=text,
                span=(word.start, word.end),
            )
        return [w.raw for w in words[:index]], words[index:]
    return [w.raw for w in words], []


def _read_parts(
    text: str, words: list[_Word]
) -> tuple[list[tuple[WeightedText, Span]], Span | None]:
    """The `text::weight` parts between the image prompts and the parameters."""
    if not words:
        return [], None
    start, end = words[0].start, words[-1].end
    parts: list[tuple[WeightedText, Span]] = []
    pos = start
    while pos < end:
        sep = text.find("::", pos, end)
        piece_end = end if sep < 0 else sep
        weight, after = (1.0, end) if sep < 0 else _read_weight(text, sep, end)
        s, e = _trim(text, pos, piece_end)
        if s == e:
            if sep < 0:
                break  # only spaces after the last weight
            raise PromptError("empty prompt part before ::", text=text, span=(sep, sep + 2))
        part_text = collapse(unescape(text[s:e]))
        problem = text_problem(part_text, all_names())
        if problem is not None:
            raise PromptError(f"prompt part {part_text} {problem}", text=text, span=(s, e))
        parts.append((WeightedText(part_text, weight), (s, e)))
        pos = after
    return parts, (start, end)


def _read_weight(text: str, sep: int, end: int) -> tuple[float, int]:
    """The weight after the `::` at `sep` (1 if none is written) and where the next part starts."""
    match = _WEIGHT_RE.match(text, sep + 2, end)
    if match is None:
        bad = _BAD_WEIGHT_RE.match(text, sep + 2, end)
        if bad is not None:
            raise PromptError(
                f"::{bad.group()} is not a weight: write a number like ::2 or ::-0.5, "
                "or put a space after :: to start the next part",
                text=text,
                span=(sep, bad.end()),
            )
        return 1.0, sep + 2
    weight = float(match.group(1))
    if not abs(weight) <= MAX_WEIGHT:
        raise PromptError(
            f"weight {match.group(1)} is out of range: use -1000–1000",
            text=text,
            span=match.span(1),
        )
    return weight, match.end()


def _trim(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _read_params(text: str, words: list[_Word]) -> tuple[dict[str, Any], dict[str, Span]]:
    """Each `--name value…` group into its Params field, refusing repeats and unknown names."""
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    given: dict[str, str] = {}
    starts = [i for i, word in enumerate(words) if param_name(word.raw) is not None]
    for i, first in enumerate(starts):
        name_word = words[first]
        group = words[first + 1 : starts[i + 1] if i + 1 < len(starts) else len(words)]
        name = param_name(name_word.raw) or ""
        spec = lookup(name)
        if spec is None:
            _unknown(text, name_word, name)
            continue
        if spec.field in given:
            earlier = given[spec.field]
            again = "is given twice" if earlier == name else f"repeats --{earlier}"
            raise PromptError(
                f"--{name} {again}: give each parameter once",
                text=text,
                span=(name_word.start, name_word.end),
            )
        given[spec.field] = name
        values[spec.field] = _read_value(text, spec, name, name_word, group)
        spans[spec.field] = (name_word.start, group[-1].end if group else name_word.end)
    return values, spans


def _read_value(text: str, spec: ParamSpec, name: str, name_word: _Word, group: list[_Word]) -> Any:
    arity = spec.codec.arity
    if arity is Arity.FLAG and group:
        raise _error(
            text,
            group[0],
            f"unexpected {group[0].raw} after --{name}: --{name} takes no value, "
            "and prompt text goes before the parameters",
        )
    if arity in (Arity.ONE, Arity.SOME) and not group:
        raise _error(text, name_word, f"--{name} needs a value, like --{name} {spec.example}")
    if arity is Arity.ONE and len(group) > 1:
        raise _error(
            text,
            group[1],
            f"unexpected {group[1].raw} after --{name} {group[0].raw}: "
            f"--{name} takes one value, and prompt text goes before the parameters",
        )
    try:
        value = spec.codec.normalize(spec.codec.read([word.raw for word in group]))
    except ValueProblem as problem:
        bad = group[problem.index] if problem.index is not None else group[0]
        raise _error(
            text, bad, f"--{name} {bad.raw} {problem.message}", problem.suggestion
        ) from None
    problem_text = spec.codec.check(value)
    if problem_text is not None:
        raw = " ".join(word.raw for word in group)
        span = (group[0].start, group[-1].end) if group else (name_word.start, name_word.end)
        raise PromptError(f"--{name} {raw} {problem_text}", text=text, span=span)
    return value


def _error(text: str, word: _Word, message: str, suggestion: str | None = None) -> PromptError:
    return PromptError(message, text=text, span=(word.start, word.end), suggestion=suggestion)


def _unknown(text: str, word: _Word, name: str) -> None:
    """Raise the most helpful error for a parameter name that is not in the table."""
    names = sorted(all_names(), key=len, reverse=True)
    if name.lower() in UNSUPPORTED:
        raise _error(
            text, word, f"--{name} is a Midjourney parameter that imagineer does not support"
        )
    glued = next((n for n in names if name.startswith(n) and name[len(n)] in "0123456789."), None)
    if glued is not None:
        rest = name[len(glued) :]
        raise _error(
            text,
            word,
            f"unknown parameter --{name}: put a space before the value",
            f"--{glued} {rest}",
        )
    near = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
    raise _error(text, word, f"unknown parameter --{name}", f"--{near[0]}" if near else None)


def _check_whole(
    text: str,
    images: list[str],
    parts: list[tuple[WeightedText, Span]],
    values: dict[str, Any],
    spans: dict[str, Span],
    text_span: Span,
) -> None:
    """Checks that involve several parts of the prompt at once."""
    conflict = video_conflict(
        video=values.get("video", False),
        motion=values.get("motion", "low"),
        loop=values.get("loop", False),
        end=values.get("end"),
    )
    if conflict is not None:
        name, message = conflict
        raise PromptError(message, text=text, span=spans[name])
    prompts = [part for part, _ in parts]
    problem = content_problem(images, prompts, values.get("video", False)) or weights_problem(
        prompts, values.get("no", ())
    )
    if problem is not None:
        raise PromptError(problem, text=text, span=text_span)
