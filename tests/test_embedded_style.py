"""--sref on the embedded model with its shipped weights: a reference in one world style moves
the outputs' evaluated style toward it, seeds stay exact, and --sw 0 turns it off."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from imagineer.engines.base import Capability, GenerationInput, RunControl, StyleReference
from imagineer.engines.embedded.engine import EmbeddedEngine, weights_available
from imagineer.world.evaluate import Evaluator
from imagineer.world.render import render
from imagineer.world.scene import ObjectGroup, Scene

PROMPT = "a red hot air balloon over the hills"  # states no style: the model draws photos
SEEDS = (0, 1, 2, 3)

pytestmark = pytest.mark.skipif(
    weights_available() is not None, reason=f"shipped weights: {weights_available()}"
)


@functools.cache
def engine() -> EmbeddedEngine:
    torch.set_num_threads(1)
    return EmbeddedEngine.load()


def reference(style: str) -> StyleReference:
    """A world render in `style` whose content differs from the prompt's (sea, boats)."""
    boats = ObjectGroup("boat", "white", 2, "left")
    scene = Scene(time="dusk", landscape="sea", objects=boats, style=style, seed=7)
    return StyleReference(render(scene, 128, 128), f"{style:0<64}"[:64].encode().hex()[:64])


def item(seed: int, *refs: StyleReference, sw: float = 1.0) -> GenerationInput:
    return GenerationInput(
        Capability.TEXT_TO_IMAGE,
        PROMPT,
        width=256,  # sampled at 32x32, the size the model was trained at
        height=256,
        seed=seed,
        steps=8,
        style_refs=refs,
        style_weight=sw,
    )


def styles_of(images: list[np.ndarray]) -> list[str]:
    return [str(p.label("style")) for p in Evaluator.load().predict(images)]


@pytest.mark.parametrize("style", ["noir", "watercolor"])
def test_a_reference_moves_the_evaluated_style_toward_its_own(style: str) -> None:
    ref = reference(style)
    plain = engine().generate([item(s) for s in SEEDS], RunControl())
    styled = engine().generate([item(s, ref) for s in SEEDS], RunControl())
    before = styles_of([o.image for o in plain]).count(style)
    after = styles_of([o.image for o in styled]).count(style)
    assert after >= 3 and after - before >= 2, (before, after)
    read = dict(styled[0].extras)["style_read"]
    assert f"style={style}" in read and "time=dusk" in read
    assert len(dict(styled[0].extras)["style_reader"]) == 64


def test_seeds_stay_exact_and_sw_zero_is_no_reference() -> None:
    ref = reference("noir")
    first = engine().generate([item(5, ref)], RunControl())[0].image
    assert np.array_equal(first, engine().generate([item(5, ref)], RunControl())[0].image)
    in_batch, other = (o.image for o in engine().generate([item(5, ref), item(6)], RunControl()))
    assert np.abs(in_batch.astype(int) - first).max() <= 1  # the contract's batch tolerance
    assert not np.array_equal(first, other)
    off = engine().generate([item(5, ref, sw=0.0)], RunControl())[0]
    assert np.array_equal(off.image, engine().generate([item(5)], RunControl())[0].image)
    assert "style_read" not in dict(off.extras)
