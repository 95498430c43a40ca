"""WeightedText: a piece of prompt text (or a reference) with its `::` weight."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Far beyond any useful emphasis; the bound keeps weight sums finite.
MAX_WEIGHT = 1000.0


@dataclass(frozen=True)
class WeightedText:
    """`text::weight`; a weight of 1 is what plain text means."""

    text: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValueError(f"WeightedText text must be a string, not {type(self.text).__name__}")
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"weight {weight!r} of {self.text!r} must be a number")
        if not (math.isfinite(weight) and abs(weight) <= MAX_WEIGHT):
            raise ValueError(f"weight {weight!r} of {self.text!r} is out of range: use -1000–1000")
        # Stored as float so that equal requests also serialise identically.
        object.__setattr__(self, "weight", float(weight))
