"""Tests for world captions: grammar, counts, what each caption states, held-out prompts."""

import re

import numpy as np
import pytest

from imagineer.world.captions import Caption, PromptSpec, caption, describe, held_out_prompts
from imagineer.world.scene import ObjectGroup, Scene, is_held_out, sample_scene

_NUMBER_WORDS = {"two": 2, "2": 2, "pair": 2, "three": 3, "3": 3, "trio": 3}


def test_headline_prompt_is_canonical_and_sampled() -> None:
    spec = PromptSpec(time="sunset", city="futuristic", kind="flying_car")
    headline = "a futuristic city at sunset with flying cars"
    assert describe(spec) == headline
    assert describe(city="futuristic", time="sunset", kind="flying_car") == headline
    rng = np.random.default_rng(0)
    texts = {describe(spec, rng=rng) for _ in range(3000)}
    assert headline in texts
    assert len(texts) > 50


def test_describe_states_exactly_the_given_attributes() -> None:
    text = describe(kind="bird", count=2, colour="red", position="left", landscape="sea")
    assert text == "the sea with two red birds on the left"
    assert describe() == "a scene"
    assert "night" in describe(time="night")
    with pytest.raises(ValueError, match="give kind"):
        PromptSpec(colour="red")
    with pytest.raises(ValueError, match="time='midnight'"):
        describe(time="midnight")


@pytest.mark.parametrize("count", [1, 2, 3])
def test_plurals_follow_the_count(count: int) -> None:
    rng = np.random.default_rng(count)
    for _ in range(200):
        text = describe(PromptSpec(kind="house", colour="blue", count=count), rng=rng)
        plural = re.search(r"\b(houses|cottages|cabins)\b", text) is not None
        assert plural == (count > 1), text
        words = re.findall(r"[\w-]+", text)
        if count == 1:
            assert {"a", "one", "single", "1"} & set(words), text
        else:
            assert [_NUMBER_WORDS[w] for w in words if w in _NUMBER_WORDS] == [count], text
        assert " a a" not in text and "an blue" not in text


def test_caption_mentions_match_text() -> None:
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    for _ in range(500):
        scene = sample_scene(rng)
        cap = caption(scene, rng)
        assert isinstance(cap, Caption)
        seen |= cap.mentioned
        if scene.objects is not None:
            assert "object_kind" in cap.mentioned
            colour_named = re.search(rf"\b{scene.objects.colour}\b", cap.text) is not None
            assert colour_named == ("object_colour" in cap.mentioned), cap
        if "time" in cap.mentioned and scene.time == "night":
            assert re.search(r"night|stars", cap.text), cap
        if "style" not in cap.mentioned:
            assert not re.search(r"pixel|neon|noir|pastel|watercolor|photo", cap.text), cap
    assert len(seen) == 9


def test_single_objects_always_state_their_count() -> None:
    rng = np.random.default_rng(1)
    scene = Scene(objects=ObjectGroup("tree", "green", 1, "left"))
    for _ in range(100):
        assert "object_count" in caption(scene, rng).mentioned


def test_held_out_prompts_are_deterministic_and_held_out() -> None:
    prompts = held_out_prompts(50, seed=3)
    assert prompts == held_out_prompts(50, seed=3)
    for scene, cap in prompts:
        o = scene.objects
        assert o is not None and is_held_out(o.kind, o.colour, o.count, o.position)
        assert {"object_kind", "object_colour", "object_count", "object_position"} <= cap.mentioned
    assert len(held_out_prompts()) == 200
