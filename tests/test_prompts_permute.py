"""`{a, b}` permutations and --repeat: expansion, nesting, order and the cap."""

from __future__ import annotations

import time

import pytest

from imagineer.prompts import PromptError, format_request, parse, parse_all


def texts(prompt: str, **kwargs: int) -> list[str]:
    return [format_request(req) for req in parse_all(prompt, **kwargs)]


def test_simple_permutation() -> None:
    assert texts("a {red, blue} bird") == ["a red bird", "a blue bird"]


def test_nested_permutation_makes_three() -> None:
    assert texts("a {red, {dark, light} blue} bird") == [
        "a red bird",
        "a dark blue bird",
        "a light blue bird",
    ]


def test_groups_multiply_in_reading_order() -> None:
    assert texts("{a, b} {x, y}") == ["a x", "a y", "b x", "b y"]


def test_permutation_inside_parameters() -> None:
    reqs = parse_all("a cat --ar {16:9, 1:1}")
    assert [req.params.aspect for req in reqs] == [(16, 9), (1, 1)]
    assert [req.params.aspect for req in parse_all("cat --ar 16:{9, 10}")] == [(16, 9), (16, 10)]


def test_empty_option_and_optional_flag() -> None:
    assert texts("a {, big} cat") == ["a cat", "a big cat"]
    assert [req.params.tile for req in parse_all("cat {--tile, }")] == [True, False]


def test_without_braces_parse_all_is_parse() -> None:
    assert parse_all("a cat --ar 3:2") == [parse("a cat --ar 3:2")]


def test_escaped_braces_do_not_permute() -> None:
    assert texts(r"a \{x, y\} {1, 2}") == [r"a \{x, y\} 1", r"a \{x, y\} 2"]


def test_repeat_expands_with_consecutive_seeds() -> None:
    reqs = parse_all("cat --seed 41 --repeat 3")
    assert [req.params.seed for req in reqs] == [41, 42, 43]
    assert all(req.params.repeat == 1 for req in reqs)
    assert parse("cat --seed 41 --repeat 3").params.repeat == 3  # parse keeps it


def test_repeat_without_seed_leaves_seeds_random() -> None:
    reqs = parse_all("cat --r 4")
    assert len(reqs) == 4
    assert all(req.params.seed is None and req.params.repeat == 1 for req in reqs)


def test_repeat_times_permutations() -> None:
    assert texts("{a, b} --r 2") == ["a", "a", "b", "b"]


def test_cap_allows_exactly_the_limit() -> None:
    assert len(parse_all("{a,b,c,d,e,f,g,h} {1,2,3,4,5}")) == 40
    with pytest.raises(PromptError, match="make 41 prompts, more than the limit of 40"):
        parse_all(
            "{a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,A,B,C,D,E,F,G,H,I,J,K,L,M,N,O}"
        )


def test_cap_is_adjustable() -> None:
    assert len(parse_all("{a, b, c}", max_requests=3)) == 3
    with pytest.raises(PromptError, match="make 3 prompts, more than the limit of 2"):
        parse_all("{a, b, c}", max_requests=2)
    with pytest.raises(PromptError, match="makes 6 prompts in all, more than the limit of 5"):
        parse_all("{a, b} --repeat 3", max_requests=5)


def test_huge_counts_are_refused_without_expanding() -> None:
    prompt = " ".join(["{a, b}"] * 30)
    start = time.perf_counter()
    with pytest.raises(PromptError, match="make 1073741824 prompts"):
        parse_all(prompt)
    assert time.perf_counter() - start < 1.0


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(PromptError, match="nested more than 16 deep") as info:
        parse_all("{" * 40 + "x" + "}" * 40)
    assert info.value.span == (16, 17)


def test_error_in_a_nested_option_points_into_the_original() -> None:
    text = "a {red, {dark, light} blue} bird --chaos {5, 500}"
    with pytest.raises(PromptError) as info:
        parse_all(text)
    assert info.value.token == "500"
    assert "(in the variant: a red bird --chaos 500)" in info.value.message
