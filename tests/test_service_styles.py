"""--sref through the service on the tiny embedded engine: files read and hashed before compute,
hashes in the recipe, exact remixes while the file is unchanged, clear refusals."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagineer.engines.base import StyleReference
from imagineer.prompts import parse
from imagineer.provenance.recipe import content_hash
from imagineer.service import Service, UnsupportedRequest
from imagineer.service.plan import plan_request
from imagineer.service.styles import load_styles
from imagineer.world.render import render
from imagineer.world.scene import Scene
from test_service import INFO, make_runtime, pixels, quiet_settings


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    counter = itertools.count(1000, 10)
    with make_runtime(quiet_settings(tmp_path)) as runtime:
        yield Service(runtime, seed_source=lambda: next(counter))


@pytest.fixture
def noir(tmp_path: Path) -> Path:
    path = tmp_path / "noir.png"
    Image.fromarray(render(Scene(style="noir", time="night"), 64, 64)).save(path)
    return path


def test_the_recipe_records_the_reference_and_a_remix_is_exact(
    service: Service, noir: Path
) -> None:
    result = service.imagine(f"a red bird --sref {noir} --sw 250 --seed 4", steps=2)
    recipe = result.images[1].recipe
    assert recipe.extras["sref"] == content_hash(noir.read_bytes())
    assert recipe.extras["style_weight"] == 2.5
    assert "style=noir" in str(recipe.extras["style_read"])
    plain = service.imagine("a red bird --seed 4", steps=2)
    assert not np.array_equal(pixels(result.images[1].path), pixels(plain.images[1].path))
    again = service.remix(result.images[1].path)
    assert np.array_equal(pixels(again.images[1].path), pixels(result.images[1].path))
    Image.fromarray(render(Scene(style="neon"), 64, 64)).save(noir)  # the file changes
    with pytest.raises(UnsupportedRequest, match="has changed since the recipe was made"):
        service.remix(result.images[1].path)


def test_references_are_refused_before_any_compute(service: Service, tmp_path: Path) -> None:
    cases = {
        f"a cat --sref {tmp_path / 'gone.png'}": "no such image file",
        "a cat --sref https://example.com/style.png": "never downloads",
        "a cat --sref 1234567": "numeric style codes",
        f"a cat --sref {tmp_path / 'x.png'}::-1": "weights > 0",
    }
    for prompt, message in cases.items():
        with pytest.raises(UnsupportedRequest, match=message):
            service.imagine(prompt, steps=1)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(UnsupportedRequest, match="not a readable image"):
        service.imagine(f"a cat --sref {bad}", steps=1)


def test_weights_and_order_reach_the_engine(noir: Path, tmp_path: Path) -> None:
    other = tmp_path / "neon.png"
    Image.fromarray(render(Scene(style="neon"), 64, 64)).save(other)
    styles = load_styles(parse(f"a cat --sref {other}::3 {noir} --sw 50"))
    assert [s.weight for s in styles] == [3.0, 1.0]
    assert [s.digest for s in styles] == [content_hash(p.read_bytes()) for p in (other, noir)]
    grid = plan_request(
        parse(f"a cat --sref {other}::3 {noir} --sw 50"),
        dataclasses.replace(INFO, takes_style=True),
        seed_source=lambda: 1,
        styles=styles,
    )
    assert all(item.style_refs == styles and item.style_weight == 0.5 for item in grid.inputs)


def test_a_model_without_style_support_names_what_to_register(noir: Path) -> None:
    ref = StyleReference(np.zeros((8, 8, 3), np.uint8), "0" * 64)
    request = parse(f"a cat --sref {noir}")
    sd = dataclasses.replace(INFO, name="my-sd", family="sd15")
    with pytest.raises(UnsupportedRequest, match="--ip-adapter NAME") as err:
        plan_request(request, sd, seed_source=lambda: 1, styles=(ref,))
    assert "models add MODEL --name my-sd" in str(err.value)
    with pytest.raises(UnsupportedRequest, match="in a video"):
        load_styles(parse(f"a cat --sref {noir} --video"))
