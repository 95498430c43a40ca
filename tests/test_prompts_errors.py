"""Bad prompts: each error names the bad token and draws its caret right under it."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from imagineer.prompts import PromptError, Request, parse, parse_all


@dataclass(frozen=True)
class Bad:
    text: str
    token: str  # the text the caret must sit under ("" for a missing token)
    says: str  # a fragment the message must contain, besides naming the token
    occurrence: int = 0  # which occurrence of `token` in `text`
    named: str | None = None  # what the message must name, when not the token itself
    suggestion: str | None = None
    reader: Callable[[str], object] = parse


CASES = [
    Bad("cat --stylise 200", "--stylise", "unknown parameter", suggestion="--stylize"),
    Bad("cat --chaos 150", "150", "--chaos 150 is out of range: use 0–100"),
    Bad("cat --c 101", "101", "--c 101 is out of range: use 0–100"),
    Bad("cat --s 1001", "1001", "use 0–1000"),
    Bad("cat --weird 3001", "3001", "use 0–3000"),
    Bad("cat --q 3", "3", "is not a quality level: use 0.25, 0.5, 1, 2 or 4", occurrence=0),
    Bad("cat --seed -1", "-1", "use 0–4294967295"),
    Bad("cat --seed 4294967296", "4294967296", "out of range"),
    Bad("cat --repeat 0", "0", "use 1–40"),
    Bad("cat --r 41", "41", "use 1–40"),
    Bad("cat --iw 3.5", "3.5", "use 0–3"),
    Bad("cat --sw 1001", "1001", "use 0–1000"),
    Bad("cat --stop 9", "9", "use 10–100"),
    Bad("cat --chaos 12.5", "12.5", "is not a whole number"),
    Bad("cat --chaos lots", "lots", "is not a number"),
    Bad("cat --seed 99999999999999999999999999999999", "9" * 32, "out of range"),
    Bad("cat --ar 16x9", "16x9", "write width:height", suggestion="16:9"),
    Bad("cat --ar 5:1", "5:1", "wider than 4:1"),
    Bad("cat --aspect 1:5", "1:5", "taller than 1:4"),
    Bad("cat --ar 0:1", "0:1", "positive sides"),
    Bad("cat --ar", "--ar", "needs a value, like --ar 16:9"),
    Bad("cat --tile dog", "dog", "--tile takes no value"),
    Bad("cat --chaos 10 20", "20", "--chaos takes one value"),
    Bad("cat --s 100 --stylize 200", "--stylize", "repeats --s"),
    Bad("cat --seed 1 --seed 2", "--seed", "is given twice", occurrence=1),
    Bad("cat --raw --style raw", "--style", "repeats --raw"),
    Bad("cat --video --motion fast", "fast", "use low or high"),
    Bad("cat --motion hihg --video", "hihg", "use low or high", suggestion="high"),
    Bad("cat --motion high", "--motion high", "only applies to videos", named="--motion"),
    Bad("cat --loop", "--loop", "only applies to videos: add --video"),
    Bad("cat --video --loop --end e.png", "--end e.png", "conflicts with --loop", named="--end"),
    Bad("cat --style cute", "cute", "only --style raw"),
    Bad("cat --v six", "six", "is not a version number"),
    Bad("cat --model bad!name", "bad!name", "is not a model name"),
    Bad("cat --video --end notes.txt", "notes.txt", "is not an image link or path"),
    Bad("cat --sref", "--sref", "needs a value"),
    Bad("cat --sref photo", "photo", "is not a style reference"),
    Bad("cat --sref 123::x", "123::x", "has a bad weight"),
    Bad("cat --p bad!code", "bad!code", "is not a personalization code"),
    Bad("cat --no a,,b", "a,,b", "has an empty item"),
    Bad("cat --no a, b,", "b,", "has an empty item"),
    Bad("cat --no a::2", "a::2", "contains '::'"),
    Bad("https://example.com/page cat", "https://example.com/page", "is not an image"),
    Bad(":: 2 cat", "::", "empty prompt part before ::"),
    Bad("cat::2x dog", "::2x", "is not a weight"),
    Bad("cat::5000", "5000", "weight 5000 is out of range: use -1000–1000"),
    Bad("cat::0.4 --no dog", "cat::0.4", "add up to -0.1", named="-0.1"),
    Bad("cat::-1 dog::1", "cat::-1 dog::1", "their sum must be positive", named="add up to 0"),
    Bad("cat —ar 16:9", "—ar", "starts with a dash", suggestion="--ar"),
    Bad("cat --ar16:9", "--ar16:9", "put a space before the value", suggestion="--ar 16:9"),
    Bad("cat --cref x.png", "--cref", "imagineer does not support"),
    Bad("cat --AR 16:9", "--AR", "unknown parameter", suggestion="--ar"),
    Bad("a {red, blue} bird", "{red, blue}", "makes 2 prompts: use parse_all"),
    Bad("a {red bird", "{", "unclosed {", reader=parse_all),
    Bad("a red} bird", "}", "unmatched }", reader=parse_all),
    Bad("a {} bird", "{}", "empty {}", reader=parse_all),
    Bad(
        "a {red, blue} bird --chaos {10, 150}",
        "150",
        "--chaos 150 is out of range: use 0–100 (in the variant: a red bird --chaos 150)",
        reader=parse_all,
    ),
    Bad(
        "{a,b,c,d,e,f,g} {1,2,3,4,5,6}",
        "{a,b,c,d,e,f,g} {1,2,3,4,5,6}",
        "make 42 prompts, more than the limit of 40",
        named="42",
        reader=parse_all,
    ),
    Bad("{cat, dog} --repeat 30", "--repeat 30", "makes 60 prompts", reader=parse_all),
    Bad("cat --seed 4294967295 --repeat 2", "--seed 4294967295", "runs past", reader=parse_all),
]


@pytest.mark.parametrize("case", CASES, ids=[case.text for case in CASES])
def test_error_names_the_token_and_points_at_it(case: Bad) -> None:
    with pytest.raises(PromptError) as info:
        case.reader(case.text)
    err = info.value
    start = _find(case.text, case.token, case.occurrence)
    assert err.span == (start, start + len(case.token)), str(err)
    assert err.token == case.token
    assert (case.named or case.token) in err.message
    assert case.says in err.message
    assert err.suggestion == case.suggestion
    prompt_line, caret_line, message = str(err).split("\n")
    assert prompt_line == case.text
    assert caret_line == " " * start + "^" * max(1, len(case.token))
    assert message == err.full_message


def _find(text: str, token: str, occurrence: int) -> int:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(token, start + 1)
    return start


def test_enough_bad_input_cases() -> None:
    assert len(CASES) >= 25


def test_the_documented_example_reads_exactly() -> None:
    with pytest.raises(PromptError) as info:
        parse("a cat --stylise 200")
    assert str(info.value) == (
        "a cat --stylise 200\n      ^^^^^^^^^\nunknown parameter --stylise, did you mean --stylize?"
    )


def test_missing_text_points_at_where_it_belongs() -> None:
    with pytest.raises(PromptError, match="needs text") as info:
        parse("--ar 16:9")
    assert info.value.span == (0, 0)
    assert str(info.value).split("\n")[1] == "^"
    with pytest.raises(PromptError, match="needs text") as info:
        parse("")
    assert str(info.value) == "\n^\n" + info.value.full_message


def test_caret_on_a_later_line_and_after_wide_characters() -> None:
    with pytest.raises(PromptError) as info:
        parse("a cat\n--chaos 150")
    assert str(info.value).split("\n")[:2] == ["--chaos 150", "        ^^^"]
    with pytest.raises(PromptError) as info:
        parse("猫猫 --chaos 150")
    # Each wide character takes two columns in a terminal.
    assert str(info.value).split("\n")[1] == " " * 13 + "^^^"


def test_prompt_error_is_a_value_error_and_survives_pickling() -> None:
    with pytest.raises(ValueError) as info:
        parse("cat --chaos 150")
    err = info.value
    assert isinstance(err, PromptError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.text, again.span, again.message, str(again)) == (
        err.text,
        err.span,
        err.message,
        str(err),
    )


def test_span_outside_the_text_is_refused() -> None:
    with pytest.raises(ValueError, match="does not lie inside"):
        PromptError("x", text="abc", span=(2, 9))


def test_max_requests_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_requests"):
        parse_all("cat", max_requests=0)


def test_non_text_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse(b"cat")  # type: ignore[arg-type]


def test_constructed_requests_get_plain_value_errors() -> None:
    with pytest.raises(ValueError, match=r"image prompt 'notes\.txt' is not an image link"):
        Request(image_prompts=("notes.txt",))
