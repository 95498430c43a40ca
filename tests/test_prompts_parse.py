"""Unit tests for reading prompts: text, weights, image prompts and every parameter."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagineer.prompts import (
    Params,
    PromptError,
    Request,
    WeightedText,
    format_request,
    parse,
    parse_all,
)
from imagineer.prompts.params import specs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "prompt-language.md"


def test_plain_prompt_has_every_default() -> None:
    req = parse("a futuristic city at sunset with flying cars")
    assert req.prompts == (WeightedText("a futuristic city at sunset with flying cars", 1.0),)
    assert req.image_prompts == ()
    assert req.params == Params()


def test_defaults_are_the_documented_ones() -> None:
    p = Params()
    assert (p.aspect, p.seed, p.chaos, p.stylize, p.weird, p.quality) == (
        (1, 1),
        None,
        0,
        100,
        0,
        1,
    )
    assert (p.tile, p.raw, p.repeat, p.iw, p.sref, p.sw) == (False, False, 1, 1.0, (), 100)
    assert (p.personalize, p.version, p.model, p.draft, p.video) == (None, None, None, False, False)
    assert (p.motion, p.loop, p.end, p.stop, p.no) == ("low", False, None, 100, ())


def test_whitespace_is_canonical() -> None:
    assert parse("  a   red\n\tbird  ").prompts == (WeightedText("a red bird"),)


def test_multi_prompt_weights() -> None:
    req = parse("space ship:: 2 planet::-0.5")
    assert req.prompts == (WeightedText("space ship", 2.0), WeightedText("planet", -0.5))
    assert req.positive_text == "space ship"
    assert req.negative_text == "planet"


def test_double_colon_without_weight_splits_with_weight_one() -> None:
    assert parse("hot:: dog").prompts == (WeightedText("hot", 1.0), WeightedText("dog", 1.0))
    assert parse("hot dog").prompts == (WeightedText("hot dog", 1.0),)
    assert parse("hot::dog").prompts == (WeightedText("hot", 1.0), WeightedText("dog", 1.0))


@pytest.mark.parametrize(
    ("text", "weights"),
    [
        ("a::2 b", (2.0, 1.0)),
        ("a:: 2 b::.5", (2.0, 0.5)),
        ("a::+3 b::-1", (3.0, -1.0)),
        ("a::0.25", (0.25,)),
        ("a:: 3d render", (1.0, 1.0)),  # a space after :: then a word: the next part
        ("a::1000 b::-999.5", (1000.0, -999.5)),
    ],
)
def test_weight_forms(text: str, weights: tuple[float, ...]) -> None:
    assert tuple(part.weight for part in parse(text).prompts) == weights


def test_no_means_minus_half_and_joins_the_negative_text() -> None:
    req = parse("still life:: 2 fruit::-0.2 --no apples, green pears")
    assert req.params.no == ("apples", "green pears")
    assert req.negative_text == "fruit, apples, green pears"
    assert req.positive_text == "still life"
    # 0.6 - 0.5 stays positive; 0.5 - 0.5 does not.
    assert parse("cat::0.6 --no dog").params.no == ("dog",)
    with pytest.raises(PromptError, match=r"add up to 0 with --no counted as -0\.5"):
        parse("cat::0.5 --no dog")


def test_image_prompts_come_first() -> None:
    req = parse("https://x/y.png ./ref.jpg ../a/B.JPEG /abs/c.webp d.gif a cat --iw 2")
    assert req.image_prompts == (
        "https://x/y.png",
        "./ref.jpg",
        "../a/B.JPEG",
        "/abs/c.webp",
        "d.gif",
    )
    assert req.prompts == (WeightedText("a cat"),)
    assert req.params.iw == 2.0


def test_image_url_may_carry_a_query() -> None:
    assert parse("https://cdn.x/a.png?w=512&h=1 cat").image_prompts == (
        "https://cdn.x/a.png?w=512&h=1",
    )


def test_an_image_later_in_the_text_is_text() -> None:
    req = parse("a cat like ./ref.png")
    assert req.image_prompts == ()
    assert req.prompts == (WeightedText("a cat like ./ref.png"),)


def test_images_without_text() -> None:
    assert parse("a.png b.png").prompts == ()
    assert parse("a.png --video").params.video is True
    with pytest.raises(PromptError, match="needs text"):
        parse("a.png")


# (names, field, text at the low end, value there, text at the high end, value there)
RANGES = [
    (("ar", "aspect"), "aspect", "1:4", (1, 4), "4:1", (4, 1)),
    (("seed",), "seed", "0", 0, "4294967295", 4294967295),
    (("chaos", "c"), "chaos", "0", 0, "100", 100),
    (("stylize", "s"), "stylize", "0", 0, "1000", 1000),
    (("weird", "w"), "weird", "0", 0, "3000", 3000),
    (("quality", "q"), "quality", ".25", 0.25, "4", 4.0),
    (("repeat", "r"), "repeat", "1", 1, "40", 40),
    (("iw",), "iw", "0", 0.0, "3", 3.0),
    (("sw",), "sw", "0", 0, "1000", 1000),
    (("stop",), "stop", "10", 10, "100", 100),
]


@pytest.mark.parametrize(("names", "field", "low", "low_value", "high", "high_value"), RANGES)
def test_every_alias_reads_both_range_ends(
    names: tuple[str, ...], field: str, low: str, low_value: object, high: str, high_value: object
) -> None:
    for name in names:
        assert getattr(parse(f"cat --{name} {low}").params, field) == low_value
        assert getattr(parse(f"cat --{name} {high}").params, field) == high_value


@pytest.mark.parametrize("level", ["0.25", "0.5", "1", "2", "4", "1.0", ".5"])
def test_quality_levels(level: str) -> None:
    assert parse(f"cat --q {level}").params.quality == float(level)


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("cat --tile", "tile", True),
        ("cat --raw", "raw", True),
        ("cat --style raw", "raw", True),
        ("cat --draft", "draft", True),
        ("cat --video", "video", True),
        ("cat --video --loop", "loop", True),
        ("cat --video --motion high", "motion", "high"),
        ("cat --video --motion low", "motion", "low"),
        ("cat --video --end ./last.png", "end", "./last.png"),
        ("cat --p", "personalize", ()),
        ("cat --personalize", "personalize", ()),
        ("cat --p abc123 m7x", "personalize", ("abc123", "m7x")),
        ("cat --v 6.1", "version", "6.1"),
        ("cat --version 7", "version", "7"),
        ("cat --model sdxl-base", "model", "sdxl-base"),
        ("cat --sw 250", "sw", 250),
    ],
)
def test_flags_and_words(text: str, field: str, value: object) -> None:
    assert getattr(parse(text).params, field) == value


def test_sref_takes_links_paths_and_codes_with_weights() -> None:
    req = parse("cat --sref https://x/s.png::2 ./b.jpg 1234567::0.5")
    assert req.params.sref == (
        WeightedText("https://x/s.png", 2.0),
        WeightedText("./b.jpg", 1.0),
        WeightedText("1234567", 0.5),
    )


def test_flags_do_not_swallow_the_next_parameter() -> None:
    req = parse("cat --tile --ar 16:9 --p --chaos 5 --raw --no dogs --video --loop")
    p = req.params
    assert (p.tile, p.aspect, p.personalize, p.chaos, p.raw) == (True, (16, 9), (), 5, True)
    assert (p.no, p.video, p.loop) == (("dogs",), True, True)


def test_parameters_in_any_order() -> None:
    a = parse("cat --chaos 5 --ar 3:2 --seed 9")
    b = parse("cat --seed 9 --ar 3:2 --chaos 5")
    assert a == b
    assert format_request(a) == "cat --ar 3:2 --seed 9 --chaos 5"


def test_aspect_is_kept_as_written() -> None:
    assert parse("cat --ar 32:18").params.aspect == (32, 18)


def test_escaped_braces_are_literal() -> None:
    req = parse(r"a \{curly\} sign")
    assert req.prompts == (WeightedText("a {curly} sign"),)
    assert format_request(req) == r"a \{curly\} sign"
    assert parse_all(r"a \{curly\} sign") == [req]


def test_format_writes_only_what_differs_from_defaults() -> None:
    req = parse("https://x/y.png a cat::2 dog --no fur --q 2 --ar 16:9 --s 250 --style raw")
    assert format_request(req) == (
        "https://x/y.png a cat::2 dog::1 --ar 16:9 --stylize 250 --quality 2 --raw --no fur"
    )


def test_request_is_frozen_hashable_and_picklable() -> None:
    req = parse("a cat --ar 16:9 --sref 123::2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.params = Params()  # type: ignore[misc]
    assert len({req, parse("a cat --ar 16:9 --sref 123::2")}) == 1
    assert pickle.loads(pickle.dumps(req)) == req


def test_with_params_validates() -> None:
    req = parse("a cat")
    assert req.with_params(chaos=50, aspect=(16, 9)).params.chaos == 50
    with pytest.raises(ValueError, match=r"chaos=150 is out of range: use 0–100"):
        req.with_params(chaos=150)
    with pytest.raises(ValueError, match="unknown parameter stylise, did you mean stylize"):
        req.with_params(stylise=5)
    with pytest.raises(ValueError, match="only applies to videos"):
        req.with_params(loop=True)
    with pytest.raises(ValueError, match="must be a whole number"):
        req.with_params(seed=True)


def test_to_dict_is_plain_json() -> None:
    req = parse("./a.png a cat::2 dog::-0.5 --ar 16:9 --sref 12::3 --p --no x, y")
    data = req.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["params"]["aspect"] == [16, 9]
    assert data["params"]["sref"] == [{"text": "12", "weight": 3.0}]
    assert data["params"]["personalize"] == []
    assert data["prompts"][1] == {"text": "dog", "weight": -0.5}


def test_from_dict_refuses_unknown_keys_and_bad_values() -> None:
    good = parse("a cat").to_dict()
    with pytest.raises(ValueError, match="unknown request keys: extra"):
        Request.from_dict({**good, "extra": 1})
    with pytest.raises(ValueError, match="unknown parameter chaoss, did you mean chaos"):
        Request.from_dict({**good, "params": {"chaoss": 1}})
    with pytest.raises(ValueError, match="aspect=\\(9, 1\\) is wider than 4:1"):
        Request.from_dict({**good, "params": {"aspect": [9, 1]}})
    with pytest.raises(ValueError, match="weight"):
        Request.from_dict({**good, "prompts": [{"text": "a", "weight": float("nan")}]})


def test_from_dict_fills_missing_params_with_defaults() -> None:
    assert Request.from_dict({"prompts": [{"text": "cat", "weight": 1}]}) == parse("cat")


def test_request_refuses_text_that_would_not_read_back() -> None:
    for text in ["a::b", "a  b", " a", "a --ar", "https://x/y.png and more", ""]:
        with pytest.raises(ValueError):
            Request(prompts=(WeightedText(text),))


def test_prompts_package_does_not_import_torch() -> None:
    code = "import sys, imagineer.prompts; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_docs_table_lists_every_parameter_and_alias() -> None:
    rows = [
        line for line in DOCS.read_text(encoding="utf-8").splitlines() if line.startswith("| `--")
    ]
    table = "\n".join(rows)
    for spec in specs():
        for name in spec.names:
            assert re.search(rf"`--{name}\b", table), f"--{name} missing from the docs table"
