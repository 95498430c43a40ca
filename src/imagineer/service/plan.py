"""From prompt text to engine inputs and back: the one place the prompt language meets engines.

Every mapping of a prompt parameter to an engine term lives here (steps from --q and --draft,
guidance from --stylize, --chaos/100, --weird/3000), and so does the way back from a recipe to
the exact input that re-renders it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from imagineer.engines.base import Capability, EngineInfo, GenerationInput, StyleReference
from imagineer.prompts import Request, format_request, parse_all, size_for_aspect
from imagineer.prompts.params import MAX_SEED
from imagineer.provenance.recipe import ExtraValue, Recipe

GRID_SIZE = 4  # images per request: a 2x2 grid
GRID_COLS = 2
CHAOS_SCALE = 100.0  # --chaos 0..100 -> 0..1
WEIRD_SCALE = 3000.0  # --weird 0..3000 -> 0..1
REFERENCE_STYLIZE = 100  # --stylize at which an engine runs at its own default guidance
SW_SCALE = 100.0  # --sw 0..1000 -> style weight 0..10 (1 at the default --sw 100)

SeedSource = Callable[[], int]


class UnsupportedRequest(ValueError):
    """A prompt asks for something no engine here can honour; the message says what to drop."""


def random_seed() -> int:
    """A fresh seed that leaves room for the grid's seed+1 … seed+3 under the prompt's limit."""
    return secrets.randbelow(MAX_SEED - GRID_SIZE + 2)


@dataclass(frozen=True)
class PlannedGrid:
    """One request's batch: GRID_SIZE inputs with seeds seed, seed+1, … (or one image)."""

    request: Request | None  # None for an image without a recipe (upscale of a photo)
    prompt: str  # canonical prompt text of this request (a permutation's own variant)
    seed: int  # the first seed; drawn at random when the prompt gave none
    seed_was_random: bool
    inputs: tuple[GenerationInput, ...]
    warnings: tuple[str, ...] = ()  # parameters that were ignored, said once per request


def capability_for(request: Request) -> Capability:
    """What a request needs an engine to do."""
    return Capability.TEXT_TO_VIDEO if request.params.video else Capability.TEXT_TO_IMAGE


def check_supported(request: Request, *, video_ok: bool = False) -> list[str]:
    """Refuse what would be silently ignored; return warnings for what is harmlessly ignored.

    `video_ok`: the caller makes clips (service/video.py); image grids refuse --video.
    """
    p = request.params
    refused = []
    if p.video and not video_ok:
        refused.append(
            "--video in an image grid (clips come from `imagineer imagine` on the command "
            "line, `imagineer animate` or `imagineer reel`)"
        )
    if request.image_prompts:
        refused.append("image prompts (use `imagineer vary FILE` to start from an image)")
    refused += style_problems(request)
    if p.personalize is not None:
        refused.append("--p personalization")
    if p.stop != 100:
        refused.append(f"--stop {p.stop}")
    if refused:
        raise UnsupportedRequest(
            f"not supported yet: {'; '.join(refused)}; remove them from the prompt"
        )
    if p.version is not None:
        return [f"--v {p.version} was ignored: choose among installed models with --model"]
    return []


def style_problems(request: Request) -> list[str]:
    """What is wrong with a request's --sref, before any file is read (empty: nothing)."""
    problems = []
    if request.params.sref and request.params.video:
        problems.append("--sref in a video (style references shape images; animate a styled image)")
    for ref in request.params.sref:
        if ref.text.isdigit():
            problems.append(
                f"--sref {ref.text}: numeric style codes name Midjourney's own style library; "
                "give an image file"
            )
        elif "://" in ref.text:
            problems.append(
                f"--sref {ref.text}: imagineer never downloads; give a local image file"
            )
        elif ref.weight <= 0:
            problems.append(f"--sref {ref.text}::{ref.weight:g}: style references take weights > 0")
    return problems


def check_styles(request: Request, info: EngineInfo, styles: Sequence[StyleReference]) -> None:
    """Refuse --sref on an engine that cannot honour it, or without the images read."""
    if not request.params.sref:
        return
    if not info.takes_style:
        how = (
            "register an IP-Adapter and its image encoder (`imagineer models add "
            "IP-ADAPTER.safetensors --image-encoder DIR`), attach it to the model (`imagineer "
            f"models add MODEL --name {info.name} --ip-adapter NAME --replace`), or drop --model "
            "to use the embedded model"
            if info.family != "embedded"
            else "choose another model"
        )
        raise UnsupportedRequest(f"--sref: model {info.name!r} takes no style references; {how}")
    if len(styles) != len(request.params.sref):
        raise ValueError(
            f"{len(request.params.sref)} --sref references but {len(styles)} images: read them "
            "with imagineer.service.styles.load_styles first"
        )


def steps_for(request: Request, info: EngineInfo) -> int:
    """The engine's default steps scaled by --q (0.25…4); --draft halves them."""
    steps = info.default_steps * request.params.quality * (0.5 if request.params.draft else 1.0)
    return max(1, round(steps))


def guidance_for(stylize: int, info: EngineInfo) -> float:
    """--stylize as guidance: the embedded model's curve, scaled to the engine's own default."""
    from imagineer.engines.embedded.engine import stylize_to_guidance

    scale = stylize_to_guidance(stylize) / stylize_to_guidance(REFERENCE_STYLIZE)
    return info.default_guidance * scale


def weighted_parts(request: Request) -> tuple[tuple[str, float], ...]:
    """The positive `::` parts as (text, weight); negative parts go to the negative prompt."""
    return tuple((part.text, part.weight) for part in request.prompts if part.weight > 0)


def input_for(
    request: Request,
    info: EngineInfo,
    *,
    seed: int,
    steps: int | None = None,
    capability: Capability | None = None,
    styles: Sequence[StyleReference] = (),
) -> GenerationInput:
    """The engine input of one image of `request` (steps=None: from --q and --draft;
    `styles`: the --sref images, as load_styles read them)."""
    p = request.params
    width, height = size_for_aspect(p.aspect, area=info.base_area, multiple=info.size_multiple)
    return GenerationInput(
        capability=capability or capability_for(request),
        prompt=request.positive_text,
        negative_prompt=request.negative_text,
        weighted_prompts=weighted_parts(request),
        width=width,
        height=height,
        seed=seed,
        steps=steps_for(request, info) if steps is None else steps,
        guidance=guidance_for(p.stylize, info),
        chaos=p.chaos / CHAOS_SCALE,
        weird=p.weird / WEIRD_SCALE,
        tile=p.tile,
        raw=p.raw,
        style_refs=tuple(styles),
        style_weight=p.sw / SW_SCALE,
    )


def plan_request(
    request: Request,
    info: EngineInfo,
    *,
    seed_source: SeedSource = random_seed,
    steps: int | None = None,
    capability: Capability | None = None,
    styles: Sequence[StyleReference] = (),
) -> PlannedGrid:
    """One request's 2x2 grid: seeds from --seed, else one random seed drawn now."""
    check_steps(steps)
    warnings = check_supported(request)
    check_styles(request, info, styles)
    given = request.params.seed
    seed = seed_source() if given is None else given
    inputs = tuple(
        input_for(request, info, seed=seed + i, steps=steps, capability=capability, styles=styles)
        for i in range(GRID_SIZE)
    )
    prompt = format_request(request)
    return PlannedGrid(request, prompt, seed, given is None, inputs, tuple(warnings))


def plan_grids(
    prompt_text: str,
    info: EngineInfo,
    *,
    seed_source: SeedSource = random_seed,
    steps: int | None = None,
) -> list[PlannedGrid]:
    """Parse `prompt_text` and plan one 2x2 grid per resulting request.

    Raises PromptError for bad text and UnsupportedRequest for features no engine honours.
    `steps` overrides what --q and --draft would pick (tests and quick previews).
    """
    requests = parse_all(prompt_text)
    return [plan_request(r, info, seed_source=seed_source, steps=steps) for r in requests]


def check_steps(steps: int | None) -> None:
    """Refuse a steps override that is not a whole number of at least 1."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps={steps!r}: use a whole number of at least 1, or None")


def plan(
    prompt_text: str,
    info: EngineInfo,
    *,
    seed_source: SeedSource = random_seed,
    steps: int | None = None,
) -> list[GenerationInput]:
    """Every engine input of `prompt_text`, GRID_SIZE per request, in order."""
    grids = plan_grids(prompt_text, info, seed_source=seed_source, steps=steps)
    return [item for grid in grids for item in grid.inputs]


# --- recipes: what a GenerationInput was, and how to get it back ---------------------------

_INPUT_EXTRAS = ("chaos", "weird", "tile", "raw")


def input_extras(item: GenerationInput) -> dict[str, ExtraValue]:
    """The input fields a recipe has no column for, kept in its extras."""
    extras: dict[str, ExtraValue] = {"capability": item.capability.value}
    extras.update({name: getattr(item, name) for name in _INPUT_EXTRAS})
    if item.capability is Capability.IMAGE_TO_IMAGE:
        extras["strength"] = item.strength
    if item.capability is Capability.UPSCALE:
        extras["scale"] = item.scale
    if item.style_refs:  # the files' hashes: a re-render checks it reads the same images
        extras["sref"] = ",".join(ref.digest for ref in item.style_refs)
        extras["style_weight"] = item.style_weight
    return extras


def style_digests(recipe: Recipe) -> tuple[str, ...]:
    """The sha256 of each --sref file a recipe's output was made with, in prompt order."""
    value = str(recipe.extras.get("sref", ""))
    return tuple(value.split(",")) if value else ()


def input_from_recipe(recipe: Recipe) -> GenerationInput:
    """The text-to-image input that re-renders `recipe` exactly (same engine and weights);
    a caller adds its --sref images (load_styles, checked against style_digests)."""
    capability = Capability(str(recipe.extras.get("capability", Capability.TEXT_TO_IMAGE.value)))
    if capability is not Capability.TEXT_TO_IMAGE:
        raise UnsupportedRequest(
            f"this output was made by {capability.value} from another image, so its recipe "
            "alone cannot re-render it: remix the image it came from"
        )
    request = request_of(recipe)
    return GenerationInput(
        capability=capability,
        prompt=recipe.text_prompt,
        negative_prompt=recipe.negative_prompt,
        weighted_prompts=() if request is None else weighted_parts(request),
        width=recipe.width,
        height=recipe.height,
        seed=recipe.seed,
        steps=recipe.steps,
        guidance=recipe.guidance,
        chaos=float(recipe.extras.get("chaos", 0.0)),
        weird=float(recipe.extras.get("weird", 0.0)),
        tile=bool(recipe.extras.get("tile", False)),
        raw=bool(recipe.extras.get("raw", False)),
        style_weight=float(recipe.extras.get("style_weight", 1.0)),
    )


def request_of(recipe: Recipe) -> Request | None:
    """The parsed request a recipe was made from, or None when it carries none (imported)."""
    return Request.from_dict(recipe.request) if recipe.request else None


def native_size(size: tuple[int, int], info: EngineInfo) -> tuple[int, int]:
    """The size the engine renders natively for an image of `size` (same aspect ratio)."""
    width, height = size
    divisor = math.gcd(width, height)
    aspect = (width // divisor, height // divisor)
    try:
        return size_for_aspect(aspect, area=info.base_area, multiple=info.size_multiple)
    except ValueError as err:
        raise UnsupportedRequest(f"a {width}x{height} image: {err}") from None


def group_batches(
    items: Sequence[GenerationInput], max_batch: int
) -> list[list[tuple[int, GenerationInput]]]:
    """Items that share a batch key, in chunks of at most `max_batch`, with their positions."""
    groups: dict[tuple[object, ...], list[tuple[int, GenerationInput]]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item.batch_key(), []).append((index, item))
    size = max(1, max_batch)
    return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]
