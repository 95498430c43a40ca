"""Contract tests of the embedded engine on tiny random-weight networks (seconds, no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_contract import EngineContract
from imagineer.engines.base import Capability, GenerationInput, RunControl
from imagineer.engines.embedded.engine import EmbeddedEngine
from imagineer.engines.embedded.upscaler import Upscaler, UpscalerConfig
from test_service import tiny_embedded


@pytest.fixture(scope="module")
def tiny_engine() -> EmbeddedEngine:
    return tiny_embedded()


def item(seed: int, **kw: object) -> GenerationInput:
    base: dict[str, object] = dict(
        capability=Capability.TEXT_TO_IMAGE,
        prompt="a red bird at sunset",
        width=128,
        height=128,
        seed=seed,
        steps=2,
    )
    base.update(kw)
    return GenerationInput(**base)  # type: ignore[arg-type]


class TestEmbeddedContract(EngineContract):
    """The shared engine contract (tests/engine_contract.py) on the tiny embedded engine."""

    size = (128, 128)
    other_size = (192, 128)
    bad_width = 100

    @pytest.fixture
    def engine(self, tiny_engine: EmbeddedEngine) -> EmbeddedEngine:
        return tiny_engine


def test_negative_prompt_and_chaos_change_pixels(tiny_engine: EmbeddedEngine) -> None:
    plain = tiny_engine.generate([item(5)], RunControl())[0].image
    neg = tiny_engine.generate([item(5, negative_prompt="night")], RunControl())[0].image
    chaos = tiny_engine.generate([item(5, chaos=1.0)], RunControl())[0].image
    assert not np.array_equal(plain, neg)
    assert not np.array_equal(plain, chaos)


def test_upscale_and_image_to_image(tiny_engine: EmbeddedEngine) -> None:
    src = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    up = tiny_engine.generate(
        [item(1, capability=Capability.UPSCALE, init_image=src, scale=4)], RunControl()
    )
    assert up[0].image.shape == (128, 192, 3)
    i2i = tiny_engine.generate(
        [item(1, capability=Capability.IMAGE_TO_IMAGE, init_image=src, strength=0.5)], RunControl()
    )
    assert i2i[0].image.shape == (128, 128, 3)


def test_tile_is_seamless_at_the_base_size(tiny_engine: EmbeddedEngine) -> None:
    x = tiny_engine.sample_base([item(2, tile=True, steps=2)], RunControl())
    # Circular padding: the left and right columns are neighbours, so their difference is
    # like any other neighbouring columns' difference, not a seam.
    edge = (x[..., 0] - x[..., -1]).abs().mean()
    inner = (x[..., 1:] - x[..., :-1]).abs().mean()
    assert edge < 3 * inner


def test_cpu_upscales_big_batches_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    upscaler = Upscaler(UpscalerConfig.tiny()).eval()
    seen: list[int] = []
    forward = Upscaler.forward

    def counted(self: Upscaler, x: torch.Tensor) -> torch.Tensor:
        seen.append(len(x))
        return forward(self, x)

    monkeypatch.setattr(Upscaler, "forward", counted)
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    out = upscaler.upscale(x, 4)
    assert out.shape == (6, 3, 32, 32)
    assert seen == [4, 4, 2, 2]  # each chunk goes to full size before the next starts
    assert torch.equal(out[4:], upscaler.upscale(x[4:], 4))
