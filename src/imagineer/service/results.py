"""What the service returns and raises: typed results with a JSON form, and typed refusals."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagineer.provenance.recipe import KINDS, Kind, Recipe
from imagineer.safety import Decision


class SafetyRefusal(Exception):
    """The safety gate refused a prompt or an output; nothing was generated or kept."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision

    @property
    def category(self) -> str:
        return self.decision.category or "refused"

    @property
    def reason(self) -> str:
        return self.decision.reason


class NotAnOutput(ValueError):
    """A file that cannot be varied, remixed or upscaled as asked (no recipe, or a grid)."""


@dataclass(frozen=True)
class OutputImage:
    """One image written, with the recipe that re-renders it and the marks it carries."""

    path: Path
    recipe: Recipe
    watermarked: bool
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "recipe": self.recipe.to_dict(),
            "watermarked": self.watermarked,
            "signed": self.signed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputImage:
        return cls(
            path=Path(data["path"]),
            recipe=Recipe.from_dict(data["recipe"]),
            watermarked=bool(data["watermarked"]),
            signed=bool(data["signed"]),
        )


@dataclass(frozen=True)
class Timings:
    """Seconds spent in each stage of one call."""

    route_s: float  # safety, parsing, routing and loading the engine
    generate_s: float
    save_s: float  # encoding, watermark, labels and signing

    @property
    def total_s(self) -> float:
        return self.route_s + self.generate_s + self.save_s

    def to_dict(self) -> dict[str, float]:
        return {
            "route_s": self.route_s,
            "generate_s": self.generate_s,
            "save_s": self.save_s,
            "total_s": self.total_s,
        }


@dataclass(frozen=True)
class GenerationResult:
    """The outcome of imagine, vary, upscale or remix."""

    kind: Kind
    images: tuple[OutputImage, ...]
    grids: tuple[Path, ...]  # one 2x2 grid per request (imagine, vary); none otherwise
    seeds: tuple[int, ...]  # the first seed of each grid, or each image's seed
    engine: str  # the registry name that ran
    model_id: str
    route_reason: str
    timings: Timings
    warnings: tuple[str, ...] = ()
    withheld: tuple[str, ...] = ()  # why images were not kept (the output check refused them)

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(image.path for image in self.images)

    @property
    def recipes(self) -> tuple[Recipe, ...]:
        return tuple(image.recipe for image in self.images)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the job result, `imagineer imagine --json`)."""
        return {
            "kind": self.kind,
            "images": [image.to_dict() for image in self.images],
            "grids": [str(path) for path in self.grids],
            "seeds": list(self.seeds),
            "engine": self.engine,
            "model_id": self.model_id,
            "route_reason": self.route_reason,
            "timings": self.timings.to_dict(),
            "warnings": list(self.warnings),
            "withheld": list(self.withheld),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationResult:
        """Rebuild a result from `to_dict()` output (e.g. a finished job's result)."""
        kind = data["kind"]
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: use one of {', '.join(KINDS)}")
        t = data["timings"]
        return cls(
            kind=kind,
            images=tuple(OutputImage.from_dict(item) for item in data["images"]),
            grids=tuple(Path(p) for p in data["grids"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            engine=str(data["engine"]),
            model_id=str(data["model_id"]),
            route_reason=str(data["route_reason"]),
            timings=Timings(float(t["route_s"]), float(t["generate_s"]), float(t["save_s"])),
            warnings=tuple(str(w) for w in data["warnings"]),
            withheld=tuple(str(w) for w in data["withheld"]),
        )


@dataclass(frozen=True)
class ModelSummary:
    """An installed model as `imagineer models` and the server's model list show it."""

    name: str
    family: str
    capabilities: tuple[str, ...]
    why_not: str | None  # None when the model is ready to load
    default: bool  # the model used when a prompt names none
    description: str
    # Known once the model is loaded (`Service.model(name, load=True)`):
    model_id: str | None = None
    model_hash: str | None = None
    base_size: str | None = None  # e.g. "256x256"
    size_multiple: int | None = None
    default_steps: int | None = None
    default_guidance: float | None = None
    licence: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return self.why_not is None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["capabilities"] = list(self.capabilities)
        data["notes"] = list(self.notes)
        data["available"] = self.available
        return data
