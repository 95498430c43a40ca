"""A small CNN judge of world images and GenEval-style prompt-adherence scores built on it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from imagineer.world.scene import ATTRIBUTE_NAMES, ATTRIBUTES, Scene

EVALUATOR_FILE = "evaluator.safetensors"
EVALUATOR_JSON = "evaluator.json"
INPUT_SIZE = 32  # the judge reads 32x32 RGB; other sizes are resized with LANCZOS first
ACCURACY_BAR = 0.95  # an attribute below this on held-out renders is not scored
OBJECT_DETAILS = ("object_colour", "object_count", "object_position")
NUM_CLASSES = tuple(len(a.values) for a in ATTRIBUTES)


class EvaluatorError(RuntimeError):
    """The evaluator's weights are missing or do not fit this version of the world."""


@dataclass(frozen=True)
class EvaluatorConfig:
    """Shape of the judge CNN; saved beside its weights."""

    channels: tuple[int, int, int] = (16, 48, 96)  # conv widths at 32, 16 and 8 px
    hidden: int = 192  # shared layer between the 4x4 feature map and the heads

    def __post_init__(self) -> None:
        if len(self.channels) != 3 or any(c < 1 for c in self.channels):
            raise ValueError(f"channels={self.channels!r}: give three positive widths")
        if self.hidden < 1:
            raise ValueError(f"hidden={self.hidden!r}: use a positive width")

    def to_dict(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "hidden": self.hidden}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluatorConfig:
        unknown = set(data) - {"channels", "hidden"}
        if unknown:
            raise ValueError(f"unknown evaluator config keys {sorted(unknown)}")
        channels = tuple(int(c) for c in data["channels"])
        if len(channels) != 3:
            raise ValueError(f"channels={data['channels']!r}: give three widths")
        return cls(channels=(channels[0], channels[1], channels[2]), hidden=int(data["hidden"]))


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convs at one resolution, then halve it."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class EvaluatorNet(nn.Module):
    """x (B, 3, 32, 32) in [-1, 1] -> one logit vector per attribute, in ATTRIBUTES order."""

    def __init__(self, cfg: EvaluatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c1, c2, c3 = cfg.channels
        self.features = nn.Sequential(_stage(3, c1), _stage(c1, c2), _stage(c2, c3))
        # Flattening the 4x4 map (no global pooling) keeps where things are: position needs it.
        self.shared = nn.Sequential(
            nn.Flatten(), nn.Linear(c3 * 16, cfg.hidden), nn.ReLU(inplace=True)
        )
        self.heads = nn.ModuleList(nn.Linear(cfg.hidden, n) for n in NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.shared(self.features(x))  # (B, hidden)
        return [head(h) for head in self.heads]  # each (B, n_values)


@dataclass(frozen=True)
class AttributePrediction:
    """The judge's most likely value of one attribute and its softmax probability."""

    attribute: str
    label: str | int
    probability: float


@dataclass(frozen=True)
class Prediction:
    """What the judge sees in one image: one entry per attribute, in ATTRIBUTES order."""

    attributes: tuple[AttributePrediction, ...]

    def get(self, attribute: str) -> AttributePrediction:
        for a in self.attributes:
            if a.attribute == attribute:
                return a
        have = tuple(a.attribute for a in self.attributes)
        raise ValueError(f"no prediction for attribute {attribute!r}; this one has {have}")

    def label(self, attribute: str) -> str | int:
        return self.get(attribute).label


@dataclass(frozen=True)
class AttributeScore:
    """How often one attribute was right, over the prompts that state it and can be scored."""

    attribute: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None


@dataclass(frozen=True)
class AdherenceReport:
    """Per-attribute accuracy, their mean, and the share of prompts with everything right."""

    attributes: tuple[AttributeScore, ...]  # the scored attributes, in ATTRIBUTES order
    prompt_results: tuple[bool | None, ...]  # per prompt; None: nothing scoreable was stated

    @property
    def mean(self) -> float | None:
        """Mean of the per-attribute accuracies (attributes never stated are left out)."""
        accs = [a.accuracy for a in self.attributes if a.accuracy is not None]
        return sum(accs) / len(accs) if accs else None

    @property
    def prompts_scored(self) -> int:
        return sum(r is not None for r in self.prompt_results)

    @property
    def all_right(self) -> float | None:
        """Share of scored prompts whose every stated, scoreable attribute was right."""
        scored = [r for r in self.prompt_results if r is not None]
        return sum(scored) / len(scored) if scored else None

    def accuracy(self, attribute: str) -> float | None:
        for a in self.attributes:
            if a.attribute == attribute:
                return a.accuracy
        names = tuple(a.attribute for a in self.attributes)
        raise ValueError(f"attribute {attribute!r} was not scored; scored: {names}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "attributes": {
                a.attribute: asdict(a) | {"accuracy": a.accuracy} for a in self.attributes
            },
            "mean": self.mean,
            "all_right": self.all_right,
            "prompts": len(self.prompt_results),
            "prompts_scored": self.prompts_scored,
        }


@dataclass(frozen=True)
class AttributeValidation:
    """The judge's accuracy on fresh held-out renders for one attribute, beside chance."""

    attribute: str
    accuracy: float
    chance: float  # accuracy of always answering the most frequent value in the same set
    count: int  # renders where the attribute has a true value


def scoreable(scene: Scene, attribute: str) -> bool:
    """Whether an image of `scene` shows `attribute` at all (no objects, or colour in noir)."""
    if attribute not in ATTRIBUTE_NAMES:
        raise ValueError(f"unknown attribute {attribute!r}; use one of {ATTRIBUTE_NAMES}")
    if attribute in OBJECT_DETAILS and scene.objects is None:
        return False
    return not (attribute == "object_colour" and scene.style == "noir")


def score_predictions(
    predictions: Sequence[Prediction],
    targets: Sequence[tuple[Scene, frozenset[str]]],
    attributes: Sequence[str] = ATTRIBUTE_NAMES,
) -> AdherenceReport:
    """Count, per prompt, the stated and scoreable attributes the prediction gets right."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets: pair them")
    for name in attributes:
        if name not in ATTRIBUTE_NAMES:
            raise ValueError(f"unknown attribute {name!r}; use names from {ATTRIBUTE_NAMES}")
    correct = dict.fromkeys(attributes, 0)
    total = dict.fromkeys(attributes, 0)
    results: list[bool | None] = []
    for prediction, (scene, mentioned) in zip(predictions, targets, strict=True):
        unknown = set(mentioned) - set(ATTRIBUTE_NAMES)
        if unknown:
            raise ValueError(f"mentioned names {sorted(unknown)} are not attributes")
        checked = [a for a in attributes if a in mentioned and scoreable(scene, a)]
        right = [prediction.label(a) == scene.value(a) for a in checked]
        for name, ok in zip(checked, right, strict=True):
            total[name] += 1
            correct[name] += ok
        results.append(all(right) if checked else None)
    ordered = [a for a in ATTRIBUTE_NAMES if a in correct]
    return AdherenceReport(
        tuple(AttributeScore(a, correct[a], total[a]) for a in ordered), tuple(results)
    )


def resize_to_input(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 image as (32, 32, 3) uint8 (LANCZOS when the size differs)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"image of shape {shape}: pass an (H, W, 3) RGB numpy array")
    if image.dtype != np.uint8:
        raise ValueError(f"image dtype {image.dtype}: pass uint8 in 0..255")
    if image.shape[:2] == (INPUT_SIZE, INPUT_SIZE):
        return image
    small = Image.fromarray(image).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(small)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 -> (N, 3, 32, 32) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def default_path() -> Path:
    """The evaluator weights shipped inside the package."""
    return Path(str(resources.files("imagineer") / "weights" / EVALUATOR_FILE))


def _world_signature() -> str:
    """The attribute values in head order: weights trained on another world must not load."""
    return json.dumps([[a.name, list(a.values)] for a in ATTRIBUTES])


def save_evaluator(
    net: EvaluatorNet,
    path: Path,
    *,
    scored: Sequence[str],
    validation: Sequence[AttributeValidation],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the weights (fp32), config, scored attributes and validation figures."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    meta = {
        "config": json.dumps(net.cfg.to_dict()),
        "attributes": _world_signature(),
        "scored": json.dumps(list(scored)),
        "validation": json.dumps([asdict(v) for v in validation]),
        **{k: json.dumps(v) for k, v in (extra or {}).items()},
    }
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


class Evaluator:
    """The trained judge: predicts each attribute of world images and scores prompt adherence."""

    def __init__(
        self,
        net: EvaluatorNet,
        *,
        scored: Sequence[str] = ATTRIBUTE_NAMES,
        validation: Sequence[AttributeValidation] = (),
    ) -> None:
        for name in scored:
            if name not in ATTRIBUTE_NAMES:
                raise ValueError(f"scored attribute {name!r} is not one of {ATTRIBUTE_NAMES}")
        self.net = net.eval()
        self.scored = tuple(a for a in ATTRIBUTE_NAMES if a in scored)
        self.validation = tuple(validation)
        self.device = next(net.parameters()).device

    @classmethod
    def load(cls, path: Path | None = None, *, device: str = "cpu") -> Evaluator:
        """The judge from the shipped (or given) weights; no network."""
        path = path or default_path()
        if not path.exists():
            raise EvaluatorError(
                f"no evaluator weights at {path}: train them with `imagineer train evaluator`"
            )
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        missing = {"config", "attributes", "scored", "validation"} - set(meta)
        if missing:
            raise EvaluatorError(f"{path} lacks metadata {sorted(missing)}: export it again")
        if meta["attributes"] != _world_signature():
            raise EvaluatorError(
                f"{path} was trained on other attribute values than this world's: retrain it"
            )
        net = EvaluatorNet(EvaluatorConfig.from_dict(json.loads(meta["config"])))
        net.load_state_dict(load_file(str(path)))
        validation = [AttributeValidation(**v) for v in json.loads(meta["validation"])]
        return cls(net.to(device), scored=json.loads(meta["scored"]), validation=validation)

    @torch.no_grad()
    def probabilities(self, images: Sequence[np.ndarray], batch: int = 256) -> list[np.ndarray]:
        """Softmax per attribute: one (N, n_values) array per attribute, in ATTRIBUTES order."""
        if len(images) == 0:
            return [np.zeros((0, n), np.float32) for n in NUM_CLASSES]
        small = np.stack([resize_to_input(im) for im in images])  # (N, 32, 32, 3)
        parts: list[list[np.ndarray]] = [[] for _ in ATTRIBUTES]
        for start in range(0, len(small), batch):
            x = to_tensor(small[start : start + batch]).to(self.device)
            for i, logits in enumerate(self.net(x)):
                parts[i].append(logits.softmax(-1).float().cpu().numpy())
        return [np.concatenate(p) for p in parts]

    def predict(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        """The most likely value of every attribute for each (H, W, 3) uint8 image."""
        probs = self.probabilities(images)
        best = [p.argmax(-1) for p in probs]
        return [
            Prediction(
                tuple(
                    AttributePrediction(
                        attr.name, attr.values[int(best[a][n])], float(probs[a][n, best[a][n]])
                    )
                    for a, attr in enumerate(ATTRIBUTES)
                )
            )
            for n in range(len(images))
        ]

    def score(
        self, images: Sequence[np.ndarray], targets: Sequence[tuple[Scene, frozenset[str]]]
    ) -> AdherenceReport:
        """Adherence of images to (scene, mentioned attributes) targets, over scored attributes."""
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images for {len(targets)} targets: pair them")
        return score_predictions(self.predict(images), targets, self.scored)
