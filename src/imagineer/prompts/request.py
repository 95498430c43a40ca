"""Request and Params: the typed, frozen, canonical form of one prompt."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imagineer.prompts.params import IMAGE_WHAT, all_names, specs
from imagineer.prompts.syntax import is_image_ref, is_url, text_problem
from imagineer.prompts.weighted import WeightedText

# `--no a, b` weighs like `a, b::-0.5`.
NO_WEIGHT = -0.5


@dataclass(frozen=True)
class Params:
    """Every parameter with its default; see docs/prompt-language.md for the table."""

    aspect: tuple[int, int] = (1, 1)  # width:height, from 1:4 to 4:1
    seed: int | None = None  # None: a random seed is drawn at run time
    chaos: int = 0  # 0–100, variety between the images of one grid
    stylize: int = 100  # 0–1000, how strongly the engine's own style applies
    weird: int = 0  # 0–3000, how unconventional
    quality: float = 1.0  # 0.25, 0.5, 1, 2 or 4: render effort
    tile: bool = False  # seamless repeating pattern
    raw: bool = False  # --raw or --style raw: less automatic beautifying
    repeat: int = 1  # 1–40: run the prompt this many times
    iw: float = 1.0  # 0–3: weight of the image prompts against the text
    sref: tuple[WeightedText, ...] = ()  # style references: links, paths, upload:/job: names, codes
    sw: int = 100  # 0–1000: weight of the style references
    personalize: tuple[str, ...] | None = None  # None: off; (): on with the default profile
    version: str | None = None  # model version like "6.1"; None: the model's default
    model: str | None = None  # a registered imagineer model; None: the router picks
    draft: bool = False  # fast, cheaper, lower quality
    video: bool = False  # a short video instead of images
    motion: str = "low"  # video motion: "low" or "high"
    loop: bool = False  # the video ends on its first frame
    end: str | None = None  # image the video ends on
    stop: int = 100  # 10–100: stop generation early, in percent
    no: tuple[str, ...] = ()  # things to keep out, weighted -0.5 together

    def __post_init__(self) -> None:
        for spec in specs():
            if spec.alternate:
                continue
            value = spec.codec.normalize(getattr(self, spec.field))
            object.__setattr__(self, spec.field, value)
            problem = spec.codec.check(value)
            if problem is not None:
                raise ValueError(f"{spec.field}={value!r} {problem}")
        conflict = video_conflict(
            video=self.video, motion=self.motion, loop=self.loop, end=self.end
        )
        if conflict is not None:
            name, message = conflict
            raise ValueError(f"{name}={getattr(self, name)!r}: {message}")


def video_conflict(
    *, video: bool, motion: str, loop: bool, end: str | None
) -> tuple[str, str] | None:
    """(field, message) when video options clash, else None."""
    if not video:
        for name, used in (("motion", motion != "low"), ("loop", loop), ("end", end is not None)):
            if used:
                return name, f"--{name} only applies to videos: add --video"
    if loop and end is not None:
        return "end", "--end conflicts with --loop: a loop ends on its own first frame"
    return None


def first_word_problem(prompts: Sequence[WeightedText]) -> str | None:
    """Why the text cannot start as it does (it would read back as an image prompt)."""
    if not prompts or not prompts[0].text.split():
        return None
    word = prompts[0].text.split()[0]
    if is_image_ref(word) or is_url(word):
        return f"the text starts with {word}, which reads as an image prompt"
    return None


def content_problem(
    image_prompts: Sequence[str], prompts: Sequence[WeightedText], video: bool
) -> str | None:
    """Why there is too little to generate from, or None."""
    if prompts or len(image_prompts) >= 2 or (video and image_prompts):
        return None
    return "a prompt needs text, two image prompts, or one image prompt with --video"


def weights_problem(prompts: Sequence[WeightedText], no: Sequence[str]) -> str | None:
    """Why the `::` weights (with --no at -0.5) do not add up to a positive number, or None."""
    if not prompts:
        return None
    weights = [part.weight for part in prompts] + ([NO_WEIGHT] if no else [])
    total = math.fsum(weights)
    if total > 0:
        return None
    with_no = " with --no counted as -0.5" if no else ""
    return f"the weights add up to {total:.6g}{with_no}: their sum must be positive"


def _check_param_names(changes: Mapping[str, Any]) -> None:
    names = [f.name for f in dataclasses.fields(Params)]
    for name in changes:
        if name not in names:
            near = difflib.get_close_matches(str(name), names, n=1)
            hint = f", did you mean {near[0]}?" if near else ""
            raise ValueError(f"unknown parameter {name}{hint}")


def _weighted_from_dict(data: object, what: str) -> WeightedText:
    if not isinstance(data, Mapping) or not set(data) <= {"text", "weight"} or "text" not in data:
        raise ValueError(f"{what} must be an object with 'text' and 'weight', got {data!r}")
    return WeightedText(data["text"], data.get("weight", 1.0))


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list | tuple):
        raise ValueError(f"{key} must be a list, got {value!r}")
    return list(value)


@dataclass(frozen=True)
class Request:
    """One prompt, parsed: image prompts, weighted text parts and parameters."""

    image_prompts: tuple[str, ...] = ()
    prompts: tuple[WeightedText, ...] = ()
    params: Params = field(default_factory=Params)

    def __post_init__(self) -> None:
        for name in ("image_prompts", "prompts"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if not isinstance(self.image_prompts, tuple):
            raise ValueError(f"image_prompts must be a tuple, got {self.image_prompts!r}")
        for image in self.image_prompts:
            if not (isinstance(image, str) and is_image_ref(image)):
                raise ValueError(f"image prompt {image!r} is not {IMAGE_WHAT}")
        if not isinstance(self.prompts, tuple):
            raise ValueError(f"prompts must be a tuple, got {self.prompts!r}")
        for part in self.prompts:
            if not isinstance(part, WeightedText):
                raise ValueError(f"prompt part {part!r} must be a WeightedText")
            problem = text_problem(part.text, all_names())
            if problem is not None:
                raise ValueError(f"prompt part {part.text!r} {problem}")
        if not isinstance(self.params, Params):
            raise ValueError(f"params must be a Params, got {self.params!r}")
        problem = (
            first_word_problem(self.prompts)
            or content_problem(self.image_prompts, self.prompts, self.params.video)
            or weights_problem(self.prompts, self.params.no)
        )
        if problem is not None:
            raise ValueError(problem)

    @property
    def positive_text(self) -> str:
        """The parts with a positive weight, joined with ", "."""
        return ", ".join(part.text for part in self.prompts if part.weight > 0)

    @property
    def negative_text(self) -> str:
        """The parts with a negative weight and the --no items, joined with ", "."""
        negative = [part.text for part in self.prompts if part.weight < 0]
        return ", ".join([*negative, *self.params.no])

    def with_params(self, **changes: Any) -> Request:
        """A validated copy with some parameters changed, e.g. `req.with_params(seed=7)`."""
        _check_param_names(changes)
        return dataclasses.replace(self, params=dataclasses.replace(self.params, **changes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; `Request.from_dict(r.to_dict()) == r`."""
        params: dict[str, Any] = {}
        for f in dataclasses.fields(Params):
            value = getattr(self.params, f.name)
            if f.name == "sref":
                value = [{"text": ref.text, "weight": ref.weight} for ref in value]
            elif isinstance(value, tuple):
                value = list(value)
            params[f.name] = value
        return {
            "image_prompts": list(self.image_prompts),
            "prompts": [{"text": part.text, "weight": part.weight} for part in self.prompts],
            "params": params,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Request:
        """Rebuild and validate a request from `to_dict()` output; unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a request must be an object, got {data!r}")
        unknown = set(data) - {"image_prompts", "prompts", "params"}
        if unknown:
            raise ValueError(f"unknown request keys: {', '.join(sorted(map(str, unknown)))}")
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be an object, got {params!r}")
        changes = dict(params)
        if "sref" in changes:
            changes["sref"] = [
                _weighted_from_dict(ref, "sref item") for ref in _list(params, "sref")
            ]
        _check_param_names(changes)
        prompts = [_weighted_from_dict(part, "prompt part") for part in _list(data, "prompts")]
        return cls(
            image_prompts=tuple(_list(data, "image_prompts")),
            prompts=tuple(prompts),
            params=Params(**changes),
        )
