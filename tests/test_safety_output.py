"""The output check hook and the NudeNet checker (with a stand-in detector; NudeNet is optional)."""

import sys
import types
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagineer.safety import Decision, NudeNetChecker, OutputChecker


class FakeDetector:
    """Returns fixed detections and checks it was handed a readable image file."""

    def __init__(self, detections: list[dict[str, Any]]) -> None:
        self.detections = detections
        self.sizes: list[tuple[int, int]] = []

    def detect(self, image_path: str) -> list[dict[str, Any]]:
        with Image.open(Path(image_path)) as image:
            self.sizes.append(image.size)
        return self.detections


def _image() -> Image.Image:
    return Image.new("RGBA", (32, 24), (200, 180, 160, 255))


def test_missing_nudenet_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nudenet", None)  # makes `import nudenet` fail
    with pytest.raises(ImportError, match=r"pip install 'imagineer\[nsfw\]'"):
        NudeNetChecker()


def test_nudenet_is_imported_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("nudenet")
    module.NudeDetector = lambda: FakeDetector([])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nudenet", module)
    checker: OutputChecker = NudeNetChecker()
    assert checker.check(_image()).allowed


def test_exposed_classes_over_threshold_are_refused() -> None:
    detector = FakeDetector(
        [
            {"class": "FEMALE_BREAST_EXPOSED", "score": 0.81, "box": [1, 2, 3, 4]},
            {"class": "FACE_FEMALE", "score": 0.95, "box": [1, 2, 3, 4]},
            {"class": "BUTTOCKS_EXPOSED", "score": 0.3, "box": [1, 2, 3, 4]},
        ]
    )
    decision = NudeNetChecker(threshold=0.6, detector=detector).check(_image())
    assert (decision.allowed, decision.category, decision.matched) == (
        False,
        "nudity_in_output",
        ("FEMALE_BREAST_EXPOSED",),
    )
    assert "female_breast_exposed" in decision.reason
    assert detector.sizes == [(32, 24)]


def test_covered_or_weak_detections_are_allowed() -> None:
    detector = FakeDetector([{"class": "BELLY_COVERED", "score": 0.99, "box": [0, 0, 1, 1]}])
    assert NudeNetChecker(detector=detector).check(_image()) == Decision(
        True, None, "allowed", (), ""
    )


def test_bad_arguments_and_bad_detections() -> None:
    with pytest.raises(ValueError, match="threshold"):
        NudeNetChecker(threshold=0.0, detector=FakeDetector([]))
    with pytest.raises(ValueError, match="labels"):
        NudeNetChecker(labels=(), detector=FakeDetector([]))
    with pytest.raises(ValueError, match=r"PIL\.Image"):
        NudeNetChecker(detector=FakeDetector([])).check("image.png")  # type: ignore[arg-type]
    broken = NudeNetChecker(detector=FakeDetector([{"label": "X"}]))
    with pytest.raises(ValueError, match="unexpected detection"):
        broken.check(_image())
