"""Contract tests of the embedded engine on tiny random-weight networks (seconds, no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagineer.engines.base import Cancelled, Capability, GenerationInput, RunControl
from imagineer.engines.embedded.engine import EmbeddedEngine
from imagineer.engines.embedded.text import TextEncoder
from imagineer.engines.embedded.unet import UNet, UNetConfig
from imagineer.engines.embedded.upscaler import Upscaler, UpscalerConfig

TINY_UNET = UNetConfig(
    channels=(8, 16),
    blocks=(1, 1),
    self_attn=(False, True),
    cross_attn=(True, True),
    cond_dim=32,
    adapter_layers=1,
    heads=2,
    time_dim=32,
    groups=4,
)


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    torch.manual_seed(0)
    unet = UNet(TINY_UNET)
    # Random, non-zero output layers so the pixels depend on every input.
    for p in unet.parameters():
        if p.abs().sum() == 0 and p.ndim > 1:
            torch.nn.init.normal_(p, std=0.05)
    upscaler = Upscaler(UpscalerConfig(channels=8, blocks=1, tail=8))
    return EmbeddedEngine(unet, upscaler, TextEncoder("cpu"), model_hash="0" * 64)


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


def test_output_size_and_type(engine: EmbeddedEngine) -> None:
    out = engine.generate([item(1, width=192, height=128)], RunControl())
    assert out[0].image.shape == (128, 192, 3)
    assert out[0].image.dtype == np.uint8


def test_same_seed_same_pixels_and_batch_equals_sequential(engine: EmbeddedEngine) -> None:
    alone = [engine.generate([item(s)], RunControl())[0].image for s in (3, 4)]
    batched = [o.image for o in engine.generate([item(3), item(4)], RunControl())]
    again = engine.generate([item(3)], RunControl())[0].image
    assert np.array_equal(alone[0], again)
    assert not np.array_equal(alone[0], alone[1])
    for a, b in zip(alone, batched, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_negative_prompt_and_chaos_change_pixels(engine: EmbeddedEngine) -> None:
    plain = engine.generate([item(5)], RunControl())[0].image
    neg = engine.generate([item(5, negative_prompt="night")], RunControl())[0].image
    chaos = engine.generate([item(5, chaos=1.0)], RunControl())[0].image
    assert not np.array_equal(plain, neg)
    assert not np.array_equal(plain, chaos)


def test_progress_and_cancellation(engine: EmbeddedEngine) -> None:
    seen: list[tuple[int, int]] = []
    engine.generate([item(1, steps=3)], RunControl(on_progress=lambda s, t, _: seen.append((s, t))))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(Cancelled):
        engine.generate([item(1, steps=3)], RunControl(should_cancel=lambda: True))


def test_upscale_and_image_to_image(engine: EmbeddedEngine) -> None:
    src = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    up = engine.generate(
        [item(1, capability=Capability.UPSCALE, init_image=src, scale=4)], RunControl()
    )
    assert up[0].image.shape == (128, 192, 3)
    i2i = engine.generate(
        [item(1, capability=Capability.IMAGE_TO_IMAGE, init_image=src, strength=0.5)], RunControl()
    )
    assert i2i[0].image.shape == (128, 128, 3)


def test_tile_is_seamless_at_the_base_size(engine: EmbeddedEngine) -> None:
    x = engine.sample_base([item(2, tile=True, steps=2)], RunControl())
    # Circular padding: the left and right columns are neighbours, so their difference is
    # like any other neighbouring columns' difference, not a seam.
    edge = (x[..., 0] - x[..., -1]).abs().mean()
    inner = (x[..., 1:] - x[..., :-1]).abs().mean()
    assert edge < 3 * inner


def test_refuses_bad_sizes_and_capabilities(engine: EmbeddedEngine) -> None:
    from imagineer.engines.base import EngineError

    with pytest.raises(EngineError, match="multiple of 64"):
        engine.generate([item(1, width=100)], RunControl())
    with pytest.raises(EngineError, match="cannot do text-to-video"):
        engine.generate([item(1, capability=Capability.TEXT_TO_VIDEO)], RunControl())
