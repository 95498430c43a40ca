"""Recipe: validation, exact JSON round trip, A1111 parameters text and parsing it back."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagineer.provenance.recipe import (
    RECIPE_SCHEMA,
    Recipe,
    RecipeError,
    Versions,
    content_hash,
    recipe_from_a1111,
)

MODEL_HASH = content_hash(b"weights")


def make_recipe(**changes: object) -> Recipe:
    base = Recipe(
        prompt="a futuristic city at sunset with flying cars --ar 16:9 --no fog",
        positive_prompt="a futuristic city at sunset with flying cars",
        negative_prompt="fog",
        request={"prompt": "a futuristic city", "aspect": [16, 9], "chaos": 0.25, "tile": False},
        kind="imagine",
        engine="embedded",
        model="imagineer-embedded-v1",
        model_hash=MODEL_HASH,
        seed=123,
        steps=20,
        guidance=5.0,
        width=256,
        height=144,
        index=2,
        sampler="Euler",
        extras={"cfg_rescale": 0.7, "shift": 3, "tiled_vae": True, "scheduler": "flow"},
        versions=Versions(imagineer="0.1.0", python="3.11.7", torch="2.13.0"),
        created_at="2026-11-23T19:25:59.123456+00:00",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_json_round_trip_is_exact() -> None:
    recipe = make_recipe()
    text = recipe.to_json()
    again = Recipe.from_json(text)
    assert again == recipe
    assert again.to_json() == text
    assert json.loads(text)["schema"] == RECIPE_SCHEMA
    assert text.isascii()


def test_round_trip_keeps_extras_types_and_unicode() -> None:
    recipe = make_recipe(prompt='café ☕ «quoted» "x"\nline two', extras={"a": 1, "b": 1.0})
    again = Recipe.from_json(recipe.to_json(indent=2))
    assert again.prompt == recipe.prompt
    assert type(again.extras["a"]) is int and type(again.extras["b"]) is float


@settings(max_examples=40, deadline=None)
@given(
    prompt=st.text(max_size=60),
    seed=st.integers(0, 2**64 - 1),
    guidance=st.floats(0, 50, allow_nan=False),
    extras=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.booleans(), st.integers(-(2**40), 2**40), st.floats(-1e6, 1e6), st.text()),
        max_size=4,
    ),
)
def test_json_round_trip_property(
    prompt: str, seed: int, guidance: float, extras: dict[str, str | int | float | bool]
) -> None:
    recipe = make_recipe(prompt=prompt, seed=seed, guidance=guidance, extras=extras)
    assert Recipe.from_json(recipe.to_json()) == recipe


def test_recipe_is_hashable_picklable_and_digest_stable() -> None:
    recipe = make_recipe()
    assert pickle.loads(pickle.dumps(recipe)) == recipe
    assert isinstance(hash(recipe), int)
    assert recipe.digest() == make_recipe().digest()
    assert recipe.digest() != make_recipe(seed=124).digest()
    child = make_recipe(kind="vary", parent=recipe.digest())
    assert Recipe.from_json(child.to_json()).parent == recipe.digest()


def test_defaults_record_the_running_versions_and_time() -> None:
    recipe = Recipe(
        prompt="x",
        kind="imagine",
        engine="embedded",
        model="m",
        model_hash=MODEL_HASH,
        seed=1,
        steps=2,
        guidance=3,
        width=8,
        height=8,
    )
    assert recipe.versions.imagineer == "0.1.0"
    assert recipe.versions.python.count(".") == 2
    assert recipe.created_at.endswith("+00:00")
    assert isinstance(recipe.guidance, float)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"kind": "paint"}, "kind='paint'"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": 2**64}, "seed="),
        ({"seed": True}, "seed=True"),
        ({"width": 0}, "width=0"),
        ({"steps": 2.5}, "steps=2.5"),
        ({"guidance": float("nan")}, "guidance=nan"),
        ({"model_hash": "xyz"}, "model_hash='xyz'"),
        ({"parent": "abc"}, "parent='abc'"),
        ({"engine": ""}, "engine=''"),
        ({"created_at": "2026-11-23T19:25:59+02:00"}, "created_at="),
        ({"created_at": "yesterday"}, "created_at='yesterday'"),
        ({"extras": {"k": [1]}}, "extras['k']"),
        ({"extras": {"k": float("inf")}}, "extras['k']"),
        ({"request": {"x": object()}}, "request is not JSON-safe"),
        ({"request": {"x": float("nan")}}, "request is not JSON-safe"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(RecipeError) as err:
        make_recipe(**changes)
    assert needle in str(err.value)


def test_from_json_rejects_foreign_or_damaged_json() -> None:
    data = make_recipe().to_dict()
    with pytest.raises(RecipeError, match="does not parse"):
        Recipe.from_json("{not json")
    with pytest.raises(RecipeError, match="schema="):
        Recipe.from_json(json.dumps({**data, "schema": "other/1"}))
    with pytest.raises(RecipeError, match="lacks seed"):
        Recipe.from_json(json.dumps({k: v for k, v in data.items() if k != "seed"}))
    with pytest.raises(RecipeError, match="unknown keys colour"):
        Recipe.from_json(json.dumps({**data, "colour": "red"}))
    with pytest.raises(RecipeError, match="versions lacks engine_library, torch"):
        Recipe.from_json(json.dumps({**data, "versions": {"imagineer": "0.1.0", "python": ""}}))
    with pytest.raises(RecipeError, match="must be an object"):
        Recipe.from_json("[1, 2]")


def test_a1111_text_has_the_fields_other_tools_read() -> None:
    text = make_recipe().a1111_parameters()
    positive, negative, params = text.split("\n")
    assert positive == "a futuristic city at sunset with flying cars"
    assert negative == "Negative prompt: fog"
    assert params == (
        "Steps: 20, Sampler: Euler, CFG scale: 5, Seed: 123, Size: 256x144, "
        f"Model hash: {MODEL_HASH[:10]}, Model: imagineer-embedded-v1, Engine: embedded, "
        "Kind: imagine, Version: imagineer 0.1.0"
    )


def test_a1111_round_trip_keeps_what_the_text_carries() -> None:
    recipe = make_recipe(
        positive_prompt="line one\nline two, with: colons",
        negative_prompt="blur\nnoise",
        model="name, with comma",
        guidance=7.25,
        kind="vary",
    )
    back = recipe_from_a1111(recipe.a1111_parameters())
    assert back.prompt == recipe.text_prompt
    assert back.negative_prompt == recipe.negative_prompt
    assert (back.seed, back.steps, back.guidance) == (123, 20, 7.25)
    assert (back.width, back.height, back.kind, back.engine) == (256, 144, "vary", "embedded")
    assert back.model == "name, with comma"
    assert back.model_hash == MODEL_HASH[:10]
    assert back.sampler == "Euler"
    assert back.versions.imagineer == "0.1.0"
    assert back.created_at == "" and back.request == {}


def test_a1111_text_from_another_tool() -> None:
    text = (
        "masterpiece, a cat\n"
        "Negative prompt: lowres\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 42, "
        'Size: 512x768, Model hash: 6ce0161689, Model: v1-5, Lora hashes: "a: 1, b: 2", '
        "Version: v1.10.1"
    )
    back = recipe_from_a1111(text)
    assert (back.prompt, back.negative_prompt) == ("masterpiece, a cat", "lowres")
    assert (back.width, back.height, back.guidance) == (512, 768, 6.5)
    assert back.engine == "unknown" and back.versions.imagineer == ""
    assert back.extras == {
        "Schedule type": "Karras",
        "Lora hashes": "a: 1, b: 2",
        "Version": "v1.10.1",
    }


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("just a prompt", "no A1111 parameters line"),
        ("p\nSteps: 20, Sampler: Euler, CFG scale: 5", "lack Seed, Size"),
        ("p\nSteps: 20, CFG scale: 5, Seed: 1, Size: big", "Size: 'big'"),
        ("p\nSteps: twenty, CFG scale: 5, Seed: 1, Size: 8x8", "bad number"),
        ("p\nSteps: 2, CFG scale: 5, Seed: 1, Size: 8x8, Kind: paint", "kind='paint'"),
    ],
)
def test_a1111_bad_text_is_refused(text: str, needle: str) -> None:
    with pytest.raises(RecipeError) as err:
        recipe_from_a1111(text)
    assert needle in str(err.value)


def test_parsed_request_survives_the_recipe() -> None:
    prompts = pytest.importorskip("imagineer.prompts")
    text = "a futuristic city at sunset with flying cars --ar 16:9 --no fog --seed 5 --chaos 20"
    request = prompts.parse(text)
    recipe = make_recipe(prompt=text, request=request.to_dict())
    again = Recipe.from_json(recipe.to_json())
    assert prompts.Request.from_dict(again.request) == request
