"""Property tests: text and JSON round-trip valid requests; any text parses or fails cleanly."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from imagineer.prompts import (
    Params,
    PromptError,
    Request,
    WeightedText,
    format_request,
    parse,
    parse_all,
)
from imagineer.prompts.params import MAX_SEED, all_names
from imagineer.prompts.request import weights_problem
from imagineer.prompts.syntax import dash_param_name, param_name

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that stress the syntax: colons, braces, backslashes, dashes, commas, wide and
# accented letters, slashes and dots that make words look like paths or links.
_CHARS = [*"abcxyzABC0129.,:-/\\{}—é猫*'\"()!?#_", "png", "http", "://", "::", "--", "ar"]


def _plain(word: str) -> str:
    """Make a word usable in prompt text without rejecting it (filters make generation slow)."""
    while "::" in word:
        word = word.replace("::", ":")
    if param_name(word) is not None or dash_param_name(word, all_names()) is not None:
        word = "x" + word
    return word


words = st.lists(st.sampled_from(_CHARS), min_size=1, max_size=6).map("".join).map(_plain)
texts = st.lists(words, min_size=1, max_size=5).map(" ".join)
items = st.lists(words.map(lambda w: w.replace(",", ";")), min_size=1, max_size=3).map(" ".join)
weights = st.one_of(
    st.integers(-5, 5).map(float),
    st.floats(-1000, 1000, allow_nan=False),
    st.sampled_from([0.5, -0.5, 0.1, 1e-7, 5e-324, 999.999]),
)
_NAME = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(list("abcXYZ019")),
    st.text(st.sampled_from(list("abcXYZ019_-.")), max_size=5),
)
_CODE = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(list("abcXYZ019")),
    st.text(st.sampled_from(list("abcXYZ019_-")), max_size=5),
)
urls = st.builds(
    lambda host, name, ext, tail: f"https://{host}/{name}.{ext}{tail}",
    st.sampled_from(["e.com", "cdn.x.org/a/b"]),
    _NAME,
    st.sampled_from(["png", "jpg", "JPEG", "webp", "gif"]),
    st.sampled_from(["", "?v=1", "#top", "?a=b&c=d"]),
)
paths = st.builds(
    lambda prefix, name, ext: f"{prefix}{name}.{ext}",
    st.sampled_from(["./", "../refs/", "/abs/", "", "C:\\pics\\", "~/"]),
    _NAME,
    st.sampled_from(["png", "jpg", "jpeg", "WEBP", "gif"]),
)
images = st.one_of(urls, paths)
codes = st.integers(0, 10**12).map(str)


def _aspect(width: int, height: int) -> tuple[int, int]:
    return min(max(width, -(-height // 4)), 4 * height), height


def _video(video: bool, motion: str, loop: bool, end: str | None) -> dict[str, object]:
    if not video:
        return {"video": False}
    return {"video": True, "motion": motion, "loop": loop, "end": None if loop else end}


def _params(video: dict[str, object], **fields: object) -> Params:
    return Params(**fields, **video)  # type: ignore[arg-type]


# Strategies are built once: building them inside a draw makes generation several times slower.
params = st.builds(
    _params,
    st.builds(
        _video, st.booleans(), st.sampled_from(["low", "high"]), st.booleans(), st.none() | images
    ),
    aspect=st.builds(_aspect, st.integers(1, 200), st.integers(1, 50)),
    seed=st.none() | st.integers(0, MAX_SEED),
    chaos=st.integers(0, 100),
    stylize=st.integers(0, 1000),
    weird=st.integers(0, 3000),
    quality=st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0]),
    tile=st.booleans(),
    raw=st.booleans(),
    repeat=st.integers(1, 40),
    iw=st.floats(0, 3),
    sref=st.lists(st.builds(WeightedText, images | codes, weights), max_size=3).map(tuple),
    sw=st.integers(0, 1000),
    personalize=st.none() | st.lists(_CODE, max_size=3).map(tuple),
    version=st.none() | st.sampled_from(["5.2", "6", "6.1", "7"]),
    model=st.none() | st.sampled_from(["embedded", "sdxl-base", "flux/dev", "sd1.5"]),
    draft=st.booleans(),
    stop=st.integers(10, 100),
    no=st.lists(items, max_size=3).map(tuple),
)


def _request(images: list[str], prompts: list[WeightedText], params: Params) -> Request | None:
    if weights_problem(prompts, params.no):
        # Lift the first weight rather than reject the draw (rejections make generation slow).
        prompts[0] = WeightedText(prompts[0].text, 1000.0)
    try:
        return Request(tuple(images), tuple(prompts), params)
    except ValueError:  # e.g. text that starts like an image link, or no text at all
        return None


requests = st.builds(
    _request,
    st.lists(images, max_size=3),
    st.lists(st.builds(WeightedText, texts, weights), max_size=4),
    params,
).filter(lambda req: req is not None)


@FAST
@given(requests)
def test_text_and_dict_round_trips_are_exact(req: Request) -> None:
    text = format_request(req)
    assert parse(text) == req, text
    data = req.to_dict()
    assert Request.from_dict(data) == req
    assert Request.from_dict(json.loads(json.dumps(data))) == req


@settings(FAST, max_examples=40)
@given(requests)
def test_parse_all_of_canonical_text_expands_only_repeat(req: Request) -> None:
    seed = req.params.seed
    assume(seed is None or seed + req.params.repeat - 1 <= MAX_SEED)
    expected = [
        req.with_params(repeat=1, seed=None if seed is None else seed + i)
        for i in range(req.params.repeat)
    ]
    assert parse_all(format_request(req)) == expected


_FRAGMENTS = [
    "cat", "a red bird", "::", "::2", ":: -0.5", "{a, b}", "{", "}", "\\{", ",", "--ar", "16:9",
    "--no", "--tile", "--seed", "42", "--chaos", "150", "--p", "--sref", "./a.png",
    "https://x/y.png", "https://x/page", "--video", "--motion", "high", "—ar", "--end", "猫",
    "--style", "raw", "\n", "--r", "3", "-", "1e5", "::x",
]  # fmt: skip


@FAST
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=4), max_size=10).map(" ".join))
def test_any_text_parses_canonically_or_fails_with_a_span(text: str) -> None:
    try:
        req = parse(text)
    except PromptError as err:
        start, end = err.span
        assert 0 <= start <= end <= len(text)
        assert err.text == text
        assert str(err).endswith(err.full_message)
        return
    assert parse(format_request(req)) == req


@FAST
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=4), max_size=10).map(" ".join))
def test_parse_all_fails_only_with_prompt_errors(text: str) -> None:
    try:
        results = parse_all(text)
    except PromptError as err:
        assert 0 <= err.span[0] <= err.span[1] <= len(text)
        return
    assert 1 <= len(results) <= 40
    assert all(req.params.repeat == 1 for req in results)


@pytest.mark.parametrize(
    "req",
    [
        Request(prompts=(WeightedText("ends with a colon:", 2.0), WeightedText("x", 1.0))),
        Request(prompts=(WeightedText("2 cats", 1.0), WeightedText("3d render", 1.0))),
        Request(prompts=(WeightedText("a {literal} brace and a back\\slash\\", 1.0),)),
        Request(prompts=(WeightedText("\\{", 0.5),)),
        Request(prompts=(WeightedText("tiny", 5e-324),)),
    ],
)
def test_awkward_texts_round_trip(req: Request) -> None:
    assert parse(format_request(req)) == req
