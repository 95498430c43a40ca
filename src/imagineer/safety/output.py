"""Checks generated images after compute: the OutputChecker hook and a NudeNet-based checker."""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from imagineer.safety.policy import Decision

if TYPE_CHECKING:  # the prompt gate itself imports no imaging library
    from PIL import Image

OUTPUT_NUDITY = "nudity_in_output"
EXPOSED_LABELS = (
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)
INSTALL_HINT = (
    "NudeNetChecker needs the optional 'nudenet' package, which is AGPL-3.0 licensed and "
    "therefore not installed by default: pip install 'imagineer[nsfw]'"
)


class OutputChecker(Protocol):
    """Anything that can veto a generated image."""

    def check(self, image: Image.Image) -> Decision: ...


class _Detector(Protocol):
    def detect(self, image_path: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Detection:
    """One region a detector found: its label and confidence."""

    label: str
    score: float


def _detections(raw: list[dict[str, Any]]) -> list[Detection]:
    """Validate the detector's plain dicts into typed detections."""
    found = []
    for item in raw:
        label, score = item.get("class"), item.get("score")
        if not isinstance(label, str) or not isinstance(score, int | float):
            raise ValueError(f"unexpected detection from NudeNet: {item!r}")
        found.append(Detection(label, float(score)))
    return found


class NudeNetChecker:
    """Refuses images where NudeNet finds exposed body parts at or above `threshold`."""

    def __init__(
        self,
        threshold: float = 0.6,
        labels: Sequence[str] = EXPOSED_LABELS,
        detector: _Detector | None = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if not labels:
            raise ValueError("labels must name at least one NudeNet class, e.g. 'ANUS_EXPOSED'")
        self.threshold = threshold
        self.labels = frozenset(labels)
        self._detector = detector if detector is not None else self._load_detector()

    @staticmethod
    def _load_detector() -> _Detector:
        try:
            nudenet = importlib.import_module("nudenet")
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        detector: _Detector = nudenet.NudeDetector()
        return detector

    def check(self, image: Image.Image) -> Decision:
        """Allow the image, or refuse it naming the classes found."""
        from PIL import Image

        if not isinstance(image, Image.Image):
            raise ValueError(f"image must be a PIL.Image.Image, got {type(image).__name__}")
        # NudeNet 3.x reads images from a path only.
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "image.png"
            image.convert("RGB").save(path)
            found = _detections(self._detector.detect(str(path)))
        over = sorted(
            {d.label for d in found if d.label in self.labels and d.score >= self.threshold}
        )
        if not over:
            return Decision(True, None, "allowed", (), "")
        reason = (
            f"refused: the generated image shows nudity ({', '.join(over).lower()}); "
            "change the prompt or turn the output check off in your deployment"
        )
        return Decision(False, OUTPUT_NUDITY, reason, tuple(over), "")
