"""Style references (--sref) for the embedded model.

The world evaluator reads each reference's look: its style, and its time of day and weather
when it is sure of them (landscape and objects are content, not look). Each prompt part is then
encoded twice, as written and with the look added in the captions' own words ("a red balloon
over the hills" and "a red balloon over the hills at dusk, film noir"), and the model sees

    states(text) + w * sum_i share_i * (states(text + look_i) - states(text))

with w = --sw / 100 and share_i each reference's weight over their sum. w = 0 is the prompt
alone, 1 is the prompt written with the look, larger pushes further. What was read is recorded
with each output (`style_read`), and so is the evaluator's weights hash (`style_reader`); a
reference from outside the world is read as the nearest world look.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imagineer.engines.base import EngineError, GenerationInput, StyleReference
from imagineer.engines.embedded.text import TextStates
from imagineer.world.captions import with_look

if TYPE_CHECKING:
    from imagineer.world.evaluate import Evaluator

LOOK = ("style", "time", "weather")  # a world image's look; landscape and objects are content
SURE = 0.5  # time and weather join a reading only at this probability; style always does
Encode = Callable[[list[str]], TextStates]


@dataclass(frozen=True)
class StyleReading:
    """The look the evaluator reads in one reference: (attribute, value, probability)."""

    values: tuple[tuple[str, str, float], ...]

    def applied_to(self, text: str) -> str:
        """`text` with this look, e.g. "a red bird" -> "a red bird at dusk, film noir"."""
        read = {name: value for name, value, _ in self.values}
        return with_look(
            text, style=read["style"], time=read.get("time"), weather=read.get("weather")
        )

    def summary(self) -> str:
        return ", ".join(f"{name}={value} {p:.2f}" for name, value, p in self.values)


class StyleReader:
    """Reads references with the world evaluator (loaded on first use), cached by file hash."""

    def __init__(self, device: str = "cpu", path: Path | None = None) -> None:
        self.device = device
        self.path = path
        self._evaluator: Evaluator | None = None
        self._digest = ""
        self._cache: dict[str, StyleReading] = {}

    @property
    def digest(self) -> str:
        """sha256 of the evaluator weights that read the references ("" until loaded)."""
        return self._digest

    def read(self, ref: StyleReference) -> StyleReading:
        key = ref.digest or hashlib.sha256(np.ascontiguousarray(ref.image).tobytes()).hexdigest()
        if key not in self._cache:
            prediction = self._load().predict([ref.image])[0]
            values = []
            for name in LOOK:
                guess = prediction.get(name)
                if name == "style" or guess.probability >= SURE:
                    values.append((name, str(guess.label), round(guess.probability, 4)))
            self._cache[key] = StyleReading(tuple(values))
        return self._cache[key]

    def _load(self) -> Evaluator:
        from imagineer.world.evaluate import Evaluator, EvaluatorError, default_path

        if self._evaluator is None:
            path = self.path or default_path()
            try:
                self._evaluator = Evaluator.load(path, device=self.device)
            except EvaluatorError as err:
                raise EngineError(
                    f"--sref needs the world evaluator to read references: {err}"
                ) from None
            self._digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._evaluator

    def encode(self, encode: Encode, text: str, item: GenerationInput) -> TextStates:
        """The token states of one prompt part, moved toward the item's references' looks."""
        plain = encode([text])
        if not item.style_refs or item.style_weight <= 0:
            return plain
        total = sum(ref.weight for ref in item.style_refs)
        looks = [(self.read(ref).applied_to(text), ref.weight / total) for ref in item.style_refs]
        both = TextStates.cat([plain, *(encode([look]) for look, _ in looks)])  # padded alike
        base = both.tokens[:1]  # (1, L, D)
        shift = sum(
            share * (both.tokens[i + 1 : i + 2] - base) for i, (_, share) in enumerate(looks)
        )
        mask = both.mask.any(dim=0, keepdim=True)  # (1, L): the longest text's tokens
        return TextStates(base + item.style_weight * shift, mask)

    def extras(self, item: GenerationInput) -> tuple[tuple[str, str], ...]:
        """What each reference was read as, and which evaluator weights read it."""
        if not item.style_refs or item.style_weight <= 0:
            return ()
        read = " | ".join(self.read(ref).summary() for ref in item.style_refs)
        return (("style_read", read), ("style_reader", self.digest))
