"""What the diffusers image and video engines share: engine info from a registry entry, the
prompt language mapped onto pipeline arguments, seeds, progress and cancellation, tiling.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import torch
from PIL import Image

from imagineer.engines.base import (
    Capability,
    EngineError,
    EngineInfo,
    GenerationInput,
    RunControl,
)
from imagineer.models.adapters import style_key
from imagineer.models.catalog import ModelEntry
from imagineer.models.families import Family, family

CHAOS_SPREAD = 0.6  # --chaos 100 jitters prompt embeddings by 0.6 of their spread


def info_for(entry: ModelEntry) -> EngineInfo:
    """What the router and planner need, read from the registry entry (no loading)."""
    fam = family(entry.family)
    return EngineInfo(
        name=entry.name,
        family=entry.family,
        capabilities=entry.capability_set,
        model_id=entry.repo_id or entry.path,
        model_hash=entry.content_hash,
        base_area=entry.base_side**2,
        size_multiple=entry.size_multiple,
        default_steps=entry.default_steps,
        default_guidance=entry.default_guidance,
        max_batch=fam.max_batch,
        takes_style=entry.ip_adapter is not None,
        licence=entry.licence or ("see the model's licence file" if entry.licence_text else ""),
        notes=engine_notes(entry),
    )


def engine_notes(entry: ModelEntry) -> tuple[str, ...]:
    """Lines `imagineer models show` prints about where the model comes from."""
    notes = [f"{entry.source}: {entry.path}", f"diffusers pipeline {entry.pipeline}"]
    if entry.config:
        notes.append(f"configs from {entry.config}")
    notes += [f"LoRA {r.name} at {r.weight:g}" for r in entry.loras]
    if entry.ip_adapter is not None:
        notes.append(f"IP-Adapter {entry.ip_adapter} for --sref")
    return tuple(notes)


def pipeline_key(item: GenerationInput) -> tuple[object, ...]:
    """Items with equal keys can share one pipeline call (same size, steps, guidance, …)."""
    return (
        *item.batch_key(),
        item.guidance,
        item.strength,
        item.scale,
        item.fps,
        item.motion,
        *style_key(item),  # one IP-Adapter embedding and scale per call
    )


def generators(items: Sequence[GenerationInput]) -> list[torch.Generator]:
    """One CPU generator per item, seeded with its seed: the same noise on every device and
    whether an item runs alone or in a batch."""
    return [torch.Generator("cpu").manual_seed(item.seed) for item in items]


def step_callback(control: RunControl, steps: int) -> Callable[..., dict[str, Any]]:
    """diffusers' callback_on_step_end: report each step, raise Cancelled when asked."""

    def on_step_end(pipe: Any, step: int, _timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        total = int(getattr(pipe, "num_timesteps", 0) or steps)
        control.step(step + 1, total)
        return kwargs

    return on_step_end


def accepted(pipe: Any) -> frozenset[str]:
    """The keyword arguments a pipeline's __call__ takes."""
    return frozenset(inspect.signature(type(pipe).__call__).parameters)


def call_kwargs(pipe: Any, wanted: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    """`wanted` narrowed to what `pipe` takes; a `required` one it lacks is an error."""
    names = accepted(pipe)
    missing = [k for k in required if k not in names]
    if missing:
        raise EngineError(f"{type(pipe).__name__} takes no {', '.join(missing)}")
    return {k: v for k, v in wanted.items() if k in names}


class PromptMapper:
    """`::` weights, --no and --chaos as prompt embeddings, for CLIP-conditioned families
    (SD 1.x/2.x, SDXL, AnimateDiff); other families take the text as it is."""

    def __init__(self, entry: ModelEntry) -> None:
        self.family: Family = family(entry.family)
        self.name = entry.name

    def arguments(self, pipe: Any, items: Sequence[GenerationInput]) -> dict[str, Any]:
        """prompt / negative prompt arguments for one pipeline call over `items`."""
        if self.family.weighted_prompts:
            return self._embeddings(pipe, items)
        for item in items:
            self._check_plain(item)
        args: dict[str, Any] = {"prompt": [item.prompt for item in items]}
        if any(item.negative_prompt for item in items):
            args["negative_prompt"] = [item.negative_prompt for item in items]
        return args

    def _check_plain(self, item: GenerationInput) -> None:
        """Refuse what a text-only family would silently ignore."""
        fam = self.family.name
        weights = {w for _, w in item.weighted_prompts}
        if len(weights) > 1:
            raise EngineError(
                f"model {self.name!r} ({fam}) takes the prompt as one text: `::` weights other "
                "than equal ones need a CLIP-conditioned model (sd15, sdxl, animatediff)"
            )
        if item.chaos > 0:
            raise EngineError(
                f"--chaos needs a CLIP-conditioned model (sd15, sdxl, animatediff); "
                f"{self.name!r} is {fam}: remove --chaos"
            )
        if item.negative_prompt and not self.family.negative_prompt:
            raise EngineError(f"model {self.name!r} ({fam}) takes no negative prompt: remove --no")

    @torch.no_grad()
    def _embeddings(self, pipe: Any, items: Sequence[GenerationInput]) -> dict[str, Any]:
        memo: dict[str, TextEmbedding] = {}  # a grid repeats one prompt: encode it once
        conds = [_jitter(self._blend(pipe, item, memo), item) for item in items]
        unconds = [self._negative(pipe, item, memo) for item in items]
        args = {
            "prompt_embeds": torch.cat([c.tokens for c in conds]),  # (B, L, D)
            "negative_prompt_embeds": torch.cat([u.tokens for u in unconds]),
        }
        pooled = [c.pooled for c in conds]
        negative_pooled = [u.pooled for u in unconds]
        if _all_tensors(pooled) and _all_tensors(negative_pooled):  # SDXL: pooled text too
            args["pooled_prompt_embeds"] = torch.cat(pooled)  # (B, D2)
            args["negative_pooled_prompt_embeds"] = torch.cat(negative_pooled)
        return args

    def _encode(self, pipe: Any, text: str, memo: dict[str, TextEmbedding]) -> TextEmbedding:
        if text in memo:
            return memo[text]
        out = pipe.encode_prompt(
            prompt=text,
            device=pipe._execution_device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )
        memo[text] = TextEmbedding(out[0], out[2] if len(out) == 4 else None)
        return memo[text]

    def _blend(
        self, pipe: Any, item: GenerationInput, memo: dict[str, TextEmbedding]
    ) -> TextEmbedding:
        """Multi-prompts as a weighted mean of each part's embeddings (Compel's blend)."""
        parts = item.weighted_prompts or ((item.prompt, 1.0),)
        total = sum(weight for _, weight in parts)
        blend: TextEmbedding | None = None
        for text, weight in parts:
            part = self._encode(pipe, text, memo).scaled(weight / total)
            blend = part if blend is None else blend.plus(part)
        assert blend is not None  # parts is never empty
        return blend

    def _negative(
        self, pipe: Any, item: GenerationInput, memo: dict[str, TextEmbedding]
    ) -> TextEmbedding:
        embedding = self._encode(pipe, item.negative_prompt, memo)
        if not item.negative_prompt and getattr(pipe.config, "force_zeros_for_empty_prompt", False):
            # SDXL leaves the unconditional embedding at zero for an empty negative prompt.
            embedding = embedding.scaled(0.0)
        return embedding


@dataclass(frozen=True)
class TextEmbedding:
    """One prompt's token embeddings (1, L, D), and SDXL's pooled embedding (1, D2)."""

    tokens: torch.Tensor
    pooled: torch.Tensor | None = None

    def scaled(self, factor: float) -> TextEmbedding:
        pooled = None if self.pooled is None else self.pooled * factor
        return TextEmbedding(self.tokens * factor, pooled)

    def plus(self, other: TextEmbedding) -> TextEmbedding:
        pooled = None
        if self.pooled is not None and other.pooled is not None:
            pooled = self.pooled + other.pooled
        return TextEmbedding(self.tokens + other.tokens, pooled)


def _all_tensors(values: Sequence[torch.Tensor | None]) -> TypeGuard[list[torch.Tensor]]:
    return all(v is not None for v in values)


def _jitter(cond: TextEmbedding, item: GenerationInput) -> TextEmbedding:
    """--chaos: seeded noise on the prompt embedding, so a grid's images differ more."""
    if item.chaos <= 0:
        return cond
    tokens = cond.tokens
    gen = torch.Generator("cpu").manual_seed(item.seed ^ 0xC4A05)
    noise = torch.randn(tokens.shape, generator=gen).to(tokens.device, tokens.dtype)
    spread = item.chaos * CHAOS_SPREAD * tokens.float().std().item()
    return TextEmbedding(tokens + spread * noise, cond.pooled)


@contextlib.contextmanager
def circular_padding(pipe: Any, enabled: bool) -> Iterator[None]:
    """--tile: every padded convolution of the denoiser and VAE wraps around the edges."""
    if not enabled:
        yield
        return
    convs = [
        m
        for part in ("unet", "transformer", "vae")
        if isinstance(getattr(pipe, part, None), torch.nn.Module)
        for m in getattr(pipe, part).modules()
        if isinstance(m, torch.nn.Conv2d) and m.padding != (0, 0)
    ]
    before = [m.padding_mode for m in convs]
    for m in convs:
        m.padding_mode = "circular"
    try:
        yield
    finally:
        for m, mode in zip(convs, before, strict=True):
            m.padding_mode = mode


def to_uint8(frames: Any) -> np.ndarray:
    """Pipeline output (floats in 0..1, numpy or torch) as uint8 of the same shape."""
    if isinstance(frames, torch.Tensor):
        frames = frames.float().cpu().numpy()
    array = np.asarray(frames, dtype=np.float32)
    return np.ascontiguousarray((array.clip(0, 1) * 255).round().astype(np.uint8))


def check_images(items: Sequence[GenerationInput], capability: Capability) -> None:
    """Items that start from an image must carry one (and a mask, for inpainting)."""
    for i, item in enumerate(items):
        if item.init_image is None:
            raise EngineError(f"item {i}: {capability.value} needs an input image")
        if capability is Capability.INPAINT and item.mask is None:
            raise EngineError(f"item {i}: inpaint needs a mask (True where to repaint)")


def init_picture(item: GenerationInput) -> Image.Image:
    """The item's input image at its output size (Lanczos when it must be resized)."""
    image = Image.fromarray(item.init_image)  # type: ignore[arg-type]
    size = (item.width, item.height)
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)
