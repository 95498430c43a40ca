"""A base for test engines that hold, pause, count or slow the calls of a small engine they wrap."""

from __future__ import annotations

from collections.abc import Sequence

from imagineer.engines.base import Engine, EngineInfo, GenerationInput, GenerationOutput, RunControl


class WrappedEngine:
    """Runs `inner`'s calls unchanged under `inner`'s info; subclasses add what happens around
    a call."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    @property
    def info(self) -> EngineInfo:
        return self.inner.info

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        return self.inner.generate(batch, control)
