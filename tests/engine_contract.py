"""The engine contract as a reusable test suite: subclass EngineContract in a test module and
provide an `engine` fixture; every engine (embedded, diffusers image, diffusers video) runs it.

What it holds engines to: output sizes and dtype, seeds reproduce, a batch equals the same items
run one by one, progress is reported per step, cancellation stops between steps (no step runs
after the one where the caller asked to stop), and bad requests get clear errors.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pytest

from imagineer.engines.base import (
    Cancelled,
    Capability,
    Engine,
    EngineError,
    GenerationInput,
    RunControl,
)

# Batched convolutions may round a few pixels differently from single ones on CPU.
BATCH_TOLERANCE = 1


class EngineContract:
    """Shared tests; a subclass sets the class attributes and provides `engine`."""

    capability: ClassVar[Capability] = Capability.TEXT_TO_IMAGE
    size: ClassVar[tuple[int, int]] = (64, 64)  # (width, height) the engine accepts
    other_size: ClassVar[tuple[int, int]] = (96, 64)  # a second valid, non-square size
    bad_width: ClassVar[int] = 100  # a width the engine must refuse
    steps: ClassVar[int] = 2
    extra: ClassVar[dict[str, Any]] = {}  # more GenerationInput fields (frames, init image)
    unsupported: ClassVar[Capability] = Capability.TEXT_TO_VIDEO

    def item(self, seed: int, **changes: Any) -> GenerationInput:
        width, height = self.size
        fields: dict[str, Any] = dict(
            capability=self.capability,
            prompt="a red bird over the sea at sunset",
            width=width,
            height=height,
            seed=seed,
            steps=self.steps,
            **self.extra,
        )
        fields.update(changes)
        return GenerationInput(**fields)

    def frames(self, engine: Engine, items: list[GenerationInput]) -> list[np.ndarray]:
        """Every output as one array: (H, W, 3) for an image, (F, H, W, 3) for a clip."""
        return [np.stack(out.frames) for out in engine.generate(items, RunControl())]

    def test_output_size_and_type(self, engine: Engine) -> None:
        width, height = self.other_size
        out = engine.generate([self.item(1, width=width, height=height)], RunControl())
        assert len(out) == 1
        for frame in out[0].frames:
            assert frame.shape == (height, width, 3)
            assert frame.dtype == np.uint8
        assert out[0].seed == 1

    def test_same_seed_same_pixels_other_seed_differs(self, engine: Engine) -> None:
        first, again, other = (self.frames(engine, [self.item(s)])[0] for s in (3, 3, 4))
        assert np.array_equal(first, again)
        assert not np.array_equal(first, other)

    def test_batch_equals_sequential(self, engine: Engine) -> None:
        alone = [self.frames(engine, [self.item(s)])[0] for s in (5, 6)]
        batched = self.frames(engine, [self.item(5), self.item(6)])
        for single, in_batch in zip(alone, batched, strict=True):
            diff = np.abs(single.astype(int) - in_batch.astype(int)).max()
            assert diff <= BATCH_TOLERANCE

    def test_outputs_follow_batch_order(self, engine: Engine) -> None:
        items = [self.item(7), self.item(8, prompt="a green boat"), self.item(7)]
        out = engine.generate(items, RunControl())
        assert [o.seed for o in out] == [7, 8, 7]
        assert np.array_equal(np.stack(out[0].frames), np.stack(out[2].frames))

    def test_progress_is_reported_every_step(self, engine: Engine) -> None:
        seen: list[tuple[int, int]] = []
        control = RunControl(on_progress=lambda step, total, _: seen.append((step, total)))
        engine.generate([self.item(1, steps=3)], control)
        total = seen[-1][1]
        assert [step for step, _ in seen] == list(range(1, total + 1))

    def test_cancellation_stops_between_steps(self, engine: Engine) -> None:
        seen: list[int] = []
        control = RunControl(
            on_progress=lambda step, _total, _: seen.append(step),
            should_cancel=lambda: len(seen) >= 1,
        )
        with pytest.raises(Cancelled):
            engine.generate([self.item(1, steps=3)], control)
        assert seen == [1]  # no second step ran after the caller asked to stop

    def test_refuses_a_capability_it_lacks(self, engine: Engine) -> None:
        assert self.unsupported not in engine.info.capabilities
        with pytest.raises(EngineError, match=f"cannot do {self.unsupported.value}"):
            engine.generate([self.item(1, capability=self.unsupported)], RunControl())

    def test_refuses_a_size_it_cannot_render(self, engine: Engine) -> None:
        multiple = engine.info.size_multiple
        with pytest.raises(EngineError, match=f"multiple of {multiple}"):
            engine.generate([self.item(1, width=self.bad_width)], RunControl())

    def test_info_is_complete(self, engine: Engine) -> None:
        info = engine.info
        assert self.capability in info.capabilities
        assert len(info.model_hash) == 64 and int(info.model_hash, 16) >= 0
        assert info.default_steps >= 1 and info.max_batch >= 1
        assert info.base_area > 0 and info.size_multiple > 0


def with_changes(item: GenerationInput, **changes: Any) -> GenerationInput:
    return dataclasses.replace(item, **changes)
