"""The recipe that re-renders an output exactly: a typed record, its JSON and A1111 text forms."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Final, Literal, TypeAlias, get_args

# Written into every recipe JSON; bump it when a change breaks reading old recipes.
RECIPE_SCHEMA: Final = "imagineer.recipe/1"

Kind: TypeAlias = Literal["imagine", "vary", "upscale", "remix", "animate", "reel"]
KINDS: Final[tuple[str, ...]] = get_args(Kind)
ExtraValue: TypeAlias = str | int | float | bool
JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"

_HEX = re.compile(r"[0-9a-f]+")
_SEED_LIMIT = 2**64
_A1111_HASH_LEN = 10  # AUTOMATIC1111's "AutoV2" hash: the first 10 hex digits of the sha256
# The same pattern AUTOMATIC1111 uses to read its own parameters line.
_A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_A1111_NEGATIVE = "Negative prompt:"


class RecipeError(ValueError):
    """A recipe that cannot be built or read; the message names the field and what to fix."""


def utc_now_iso() -> str:
    """The current time as an ISO 8601 string in UTC, e.g. 2026-11-23T19:25:59.123456+00:00."""
    return datetime.now(UTC).isoformat()


def content_hash(data: bytes) -> str:
    """The sha256 hex of some bytes: what `Recipe.parent` holds for an input image file."""
    return hashlib.sha256(data).hexdigest()


@functools.cache  # reading the metadata parses files: once per process, not per output
def installed_version(distribution: str) -> str:
    """The installed version of a package (read from its metadata, not imported), or ""."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


@dataclass(frozen=True)
class Versions:
    """The software that made an output; "" means not installed or not known."""

    imagineer: str = ""
    python: str = ""
    torch: str = ""
    engine_library: str = ""  # e.g. "diffusers 0.42.1"; "" for the embedded engine

    @classmethod
    def current(cls, engine_library: str = "") -> Versions:
        """The versions running now; torch is looked up without importing it."""
        from imagineer import __version__

        return cls(
            imagineer=__version__,
            python=platform.python_version(),
            torch=installed_version("torch"),
            engine_library=engine_library,
        )

    def __post_init__(self) -> None:
        for f in fields(self):
            if not isinstance(getattr(self, f.name), str):
                raise RecipeError(f"versions.{f.name}={getattr(self, f.name)!r}: must be a string")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """Everything needed to re-render one output exactly. Build it with keyword arguments.

    The mapping fields (`request`, `extras`) are stored as plain dicts so recipes pickle
    across processes; treat them as read-only.
    """

    prompt: str  # the prompt text as the user wrote it, flags included
    kind: Kind
    engine: str  # registry name of the engine that ran
    model: str  # model id; "" when not known (e.g. read from A1111 text)
    model_hash: str  # sha256 hex of the weights; a shorter hex prefix only when imported; or ""
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    request: dict[str, JSONValue] = field(default_factory=dict, hash=False)  # Request.to_dict()
    index: int = 0  # position in the grid or batch
    parent: str | None = None  # sha256 hex of the input (Recipe.digest() or content_hash())
    negative_prompt: str = ""
    positive_prompt: str | None = None  # the text the model saw; None: same as `prompt`
    sampler: str = ""
    extras: dict[str, ExtraValue] = field(default_factory=dict, hash=False)
    versions: Versions = field(default_factory=Versions.current)
    created_at: str = field(default_factory=utc_now_iso)  # ISO 8601 UTC; "" when not known

    def __post_init__(self) -> None:
        self._check_texts()
        self._check_numbers()
        _check_hex("model_hash", self.model_hash, allow_empty=True, min_len=8)
        object.__setattr__(self, "model_hash", self.model_hash.lower())
        if self.parent is not None:
            _check_hex("parent", self.parent, allow_empty=False, min_len=64)
        if not isinstance(self.versions, Versions):
            raise RecipeError(f"versions={self.versions!r}: must be a Versions")
        _check_created_at(self.created_at)
        object.__setattr__(self, "request", _normalise_request(self.request))
        object.__setattr__(self, "extras", _normalise_extras(self.extras))

    def _check_texts(self) -> None:
        for name in ("prompt", "engine", "model", "model_hash", "negative_prompt", "sampler"):
            if not isinstance(getattr(self, name), str):
                raise RecipeError(f"{name}={getattr(self, name)!r}: must be a string")
        if self.positive_prompt is not None and not isinstance(self.positive_prompt, str):
            raise RecipeError(f"positive_prompt={self.positive_prompt!r}: must be a string or None")
        if self.kind not in KINDS:
            raise RecipeError(f"kind={self.kind!r}: use one of {', '.join(KINDS)}")
        if not self.engine:
            raise RecipeError("engine='': name the engine that made the output")

    def _check_numbers(self) -> None:
        _check_int("seed", self.seed, 0, _SEED_LIMIT - 1)
        _check_int("steps", self.steps, 0)
        _check_int("width", self.width, 1)
        _check_int("height", self.height, 1)
        _check_int("index", self.index, 0)
        g = self.guidance
        if isinstance(g, bool) or not isinstance(g, int | float) or not math.isfinite(g) or g < 0:
            raise RecipeError(f"guidance={g!r}: must be a finite number >= 0")
        object.__setattr__(self, "guidance", float(g))

    @property
    def text_prompt(self) -> str:
        """The positive text the model saw."""
        return self.prompt if self.positive_prompt is None else self.positive_prompt

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with every field and the schema tag; `from_dict` inverts it."""
        out: dict[str, Any] = {"schema": RECIPE_SCHEMA}
        for f in fields(self):
            out[f.name] = getattr(self, f.name)
        out["versions"] = {f.name: getattr(self.versions, f.name) for f in fields(Versions)}
        out["request"] = json.loads(json.dumps(self.request))
        out["extras"] = dict(self.extras)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Rebuild a recipe from `to_dict()` output; every field must be present, none extra."""
        if data.get("schema") != RECIPE_SCHEMA:
            raise RecipeError(f"schema={data.get('schema')!r}: not a {RECIPE_SCHEMA} recipe")
        values = {k: v for k, v in data.items() if k != "schema"}
        _check_keys("recipe", values, {f.name for f in fields(cls)})
        raw_versions = values["versions"]
        if not isinstance(raw_versions, Mapping):
            raise RecipeError(f"versions={raw_versions!r}: must be an object")
        _check_keys("versions", raw_versions, {f.name for f in fields(Versions)})
        values["versions"] = Versions(**raw_versions)
        for name in ("request", "extras"):
            if not isinstance(values[name], Mapping):
                raise RecipeError(f"{name}={values[name]!r}: must be an object")
        return cls(**values)

    def to_json(self, *, indent: int | None = None) -> str:
        """Canonical JSON (sorted keys, ASCII only, so it fits PNG tEXt and EXIF)."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True, indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Recipe:
        """Parse `to_json()` output back into an equal recipe."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RecipeError(f"recipe JSON does not parse: {err}") from err
        if not isinstance(data, dict):
            raise RecipeError(f"recipe JSON must be an object, got {type(data).__name__}")
        return cls.from_dict(data)

    def digest(self) -> str:
        """sha256 hex of the canonical JSON: what a derived output puts in `parent`."""
        return content_hash(self.to_json().encode("ascii"))

    def a1111_parameters(self) -> str:
        """The AUTOMATIC1111-style `parameters` text that other image tools read."""
        lines = [self.text_prompt]
        if self.negative_prompt:
            lines.append(f"{_A1111_NEGATIVE} {self.negative_prompt}")
        params: list[tuple[str, str]] = [("Steps", str(self.steps))]
        if self.sampler:
            params.append(("Sampler", self.sampler))
        params += [
            ("CFG scale", _format_number(self.guidance)),
            ("Seed", str(self.seed)),
            ("Size", f"{self.width}x{self.height}"),
        ]
        if self.model_hash:
            params.append(("Model hash", self.model_hash[:_A1111_HASH_LEN]))
        if self.model:
            params.append(("Model", self.model))
        params += [("Engine", self.engine), ("Kind", self.kind)]
        if self.versions.imagineer:
            params.append(("Version", f"imagineer {self.versions.imagineer}"))
        lines.append(", ".join(f"{key}: {_a1111_quote(value)}" for key, value in params))
        return "\n".join(lines)


def recipe_from_a1111(text: str) -> Recipe:
    """Read AUTOMATIC1111-style `parameters` text back into a recipe, as far as it goes.

    The text carries no request, creation time or full model hash: `request` is empty,
    `created_at` is "", `model_hash` is the short prefix and `versions` holds only what the
    Version field says. Keys imagineer does not map are kept in `extras` as strings.
    """
    positive, negative, params = _split_a1111(text)
    missing = [k for k in ("Steps", "CFG scale", "Seed", "Size") if k not in params]
    if missing:
        raise RecipeError(f"A1111 parameters lack {', '.join(missing)}: cannot rebuild a recipe")
    width, height = _parse_size(params.pop("Size"))
    version = params.pop("Version", "")
    imagineer_version = ""
    if version.startswith("imagineer "):
        imagineer_version = version.removeprefix("imagineer ")
    elif version:
        params["Version"] = version
    try:
        steps, seed = int(params.pop("Steps")), int(params.pop("Seed"))
        guidance = float(params.pop("CFG scale"))
    except ValueError as err:
        raise RecipeError(f"A1111 parameters hold a bad number: {err}") from err
    return Recipe(
        prompt=positive,
        kind=params.pop("Kind", "imagine"),  # type: ignore[arg-type]  # checked in Recipe
        engine=params.pop("Engine", "unknown"),
        model=params.pop("Model", ""),
        model_hash=params.pop("Model hash", ""),
        seed=seed,
        steps=steps,
        guidance=guidance,
        width=width,
        height=height,
        negative_prompt=negative,
        sampler=params.pop("Sampler", ""),
        extras=dict(params),
        versions=Versions(imagineer=imagineer_version),
        created_at="",
    )


def _split_a1111(text: str) -> tuple[str, str, dict[str, str]]:
    lines = text.rstrip("\n").split("\n")
    found = _A1111_PARAM.findall(lines[-1])
    if len(found) < 3:
        raise RecipeError(
            "no A1111 parameters line (like 'Steps: 20, Seed: 1, Size: 256x256') ends the text"
        )
    params = {key.strip(): _a1111_unquote(value) for key, value in found}
    positive: list[str] = []
    negative: list[str] = []
    for line in lines[:-1]:
        if not negative and line.startswith(_A1111_NEGATIVE):
            negative.append(line[len(_A1111_NEGATIVE) :].removeprefix(" "))
        elif negative:
            negative.append(line)
        else:
            positive.append(line)
    return "\n".join(positive), "\n".join(negative), params


def _parse_size(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", value.strip())
    if match is None:
        raise RecipeError(f"Size: {value!r}: expected WIDTHxHEIGHT like 256x256")
    return int(match[1]), int(match[2])


def _a1111_quote(value: str) -> str:
    if any(c in value for c in ',:\n"') or value != value.strip():
        return json.dumps(value, ensure_ascii=False)
    return value


def _a1111_unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            unquoted = json.loads(value)
        except json.JSONDecodeError:
            return value
        return unquoted if isinstance(unquoted, str) else value
    return value


def _format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecipeError(f"{name}={value!r}: must be an integer")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise RecipeError(f"{name}={value}: must be >= {minimum}{upper}")


def _check_hex(name: str, value: str, *, allow_empty: bool, min_len: int) -> None:
    if not isinstance(value, str):
        raise RecipeError(f"{name}={value!r}: must be a hex string")
    if allow_empty and value == "":
        return
    if not min_len <= len(value) <= 64 or _HEX.fullmatch(value.lower()) is None:
        raise RecipeError(f"{name}={value!r}: must be {min_len} to 64 hex digits of a sha256")


def _check_created_at(value: str) -> None:
    if value == "":
        return
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None or moment.utcoffset():
        raise RecipeError(
            f"created_at={value!r}: must be ISO 8601 in UTC, e.g. 2026-11-23T19:25:59+00:00"
        )


def _check_keys(what: str, data: Mapping[str, Any], expected: set[str]) -> None:
    missing, unknown = expected - data.keys(), data.keys() - expected
    if missing:
        raise RecipeError(f"{what} lacks {', '.join(sorted(missing))}")
    if unknown:
        raise RecipeError(f"{what} has unknown keys {', '.join(sorted(unknown))}")


def _normalise_request(request: object) -> dict[str, JSONValue]:
    if not isinstance(request, Mapping):
        raise RecipeError(f"request={request!r}: must be a mapping (use Request.to_dict())")
    try:
        normal = json.loads(json.dumps(dict(request), allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as err:
        raise RecipeError(f"request is not JSON-safe: {err}") from err
    return dict(normal)


def _normalise_extras(extras: object) -> dict[str, ExtraValue]:
    if not isinstance(extras, Mapping):
        raise RecipeError(f"extras={extras!r}: must be a mapping of str to str|int|float|bool")
    for key, value in extras.items():
        if not isinstance(key, str) or not key:
            raise RecipeError(f"extras key {key!r}: must be a non-empty string")
        if not isinstance(value, str | int | float | bool):
            raise RecipeError(f"extras[{key!r}]={value!r}: must be str, int, float or bool")
        if isinstance(value, float) and not math.isfinite(value):
            raise RecipeError(f"extras[{key!r}]={value!r}: must be finite")
    return dict(sorted(extras.items()))
