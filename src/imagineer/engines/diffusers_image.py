"""The diffusers image engine: text-to-image, image-to-image, inpaint and upscale with a
registered checkpoint (SD 1.5, SDXL, SD3, FLUX, PixArt, Sana, the SD x4 upscaler)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from imagineer.engines.base import (
    Capability,
    EngineInfo,
    GenerationInput,
    GenerationOutput,
    RunControl,
    check_batch,
    run_in_groups,
)
from imagineer.engines.diffusers_shared import (
    PromptMapper,
    call_kwargs,
    check_images,
    circular_padding,
    generators,
    info_for,
    init_picture,
    pipeline_key,
    step_callback,
    to_uint8,
)
from imagineer.models.adapters import SCALE_PER_WEIGHT, LoadedAdapter, style_arguments
from imagineer.models.catalog import ModelEntry
from imagineer.models.loading import ModelManager

UPSCALE_STRENGTH = 0.35  # latent upscale: how much of the enlarged image is redrawn
X4_NOISE_LEVEL = 20  # the SD x4 upscaler's noise added to the low-resolution input


class DiffusersImageEngine:
    """One registered image model behind the engine contract; weights load on first use."""

    def __init__(self, entry: ModelEntry, manager: ModelManager) -> None:
        self.entry = manager.verified(entry)
        self.manager = manager
        self.prompts = PromptMapper(self.entry)
        self._info = info_for(self.entry)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        check_batch(self, batch)
        return run_in_groups(batch, lambda items: self._run(items, control), pipeline_key)

    def _run(self, items: Sequence[GenerationInput], control: RunControl) -> list[GenerationOutput]:
        # 1. check inputs
        capability = items[0].capability
        if capability is not Capability.TEXT_TO_IMAGE:
            check_images(items, capability)
        styled = bool(items[0].style_refs) and items[0].style_weight > 0
        with self.manager.held(self.entry, capability, style=styled) as held:
            pipe, placement = held.pipe, held.placement
            # 2. encode prompts, 3. seed each item's noise, 4. denoise and decode
            if capability is Capability.UPSCALE and self.entry.family == "sd-x4-upscaler":
                images, extras = self._x4_upscale(pipe, items, control)
            else:
                with circular_padding(pipe, items[0].tile):
                    images = self._call(pipe, items, control, held.adapter)
                extras = {"pipeline": type(pipe).__name__}
                if capability is Capability.UPSCALE:
                    extras["upscaler"] = "latent"
            if styled and held.adapter is not None:
                extras["ip_adapter"] = held.adapter.name
                extras["ip_adapter_scale"] = SCALE_PER_WEIGHT * items[0].style_weight
            if placement.offload != "none":
                extras["offload"] = placement.offload
        return [
            GenerationOutput(
                frames=(image,),
                seed=item.seed,
                steps=self.steps_for(item),
                guidance=item.guidance,
                extras=tuple(extras.items()),
            )
            for image, item in zip(images, items, strict=True)
        ]

    def steps_for(self, item: GenerationInput) -> int:
        """Scheduler steps: an image-to-image pass runs steps x strength of them, so at least
        enough for one; upscale (asked for with 1 step) runs at the model's default."""
        if item.capability is Capability.UPSCALE:
            return max(item.steps, self.entry.default_steps, math.ceil(1 / UPSCALE_STRENGTH))
        if item.capability is Capability.TEXT_TO_IMAGE or item.strength <= 0:
            return item.steps
        return max(item.steps, math.ceil(1 / item.strength))

    def _call(
        self,
        pipe: Any,
        items: Sequence[GenerationInput],
        control: RunControl,
        adapter: LoadedAdapter | None = None,
    ) -> list[np.ndarray]:
        first = items[0]
        wanted: dict[str, Any] = {
            **self.prompts.arguments(pipe, items),
            "height": first.height,
            "width": first.width,
            "num_inference_steps": self.steps_for(first),
            "guidance_scale": first.guidance,
            "generator": generators(items),
            "output_type": "np",
            "callback_on_step_end": step_callback(control, first.steps),
        }
        capability = first.capability
        if capability is not Capability.TEXT_TO_IMAGE:
            wanted["image"] = self._init_images(pipe, items)
            wanted["strength"] = (
                UPSCALE_STRENGTH if capability is Capability.UPSCALE else first.strength
            )
        if capability is Capability.INPAINT:
            wanted["mask_image"] = [_mask(item) for item in items]
        required = ["generator", "callback_on_step_end"]
        if adapter is not None:  # the UNet holds the adapter: every call passes its embeddings
            guided = first.guidance > 1 and pipe.unet.config.time_cond_proj_dim is None
            wanted.update(style_arguments(pipe, adapter, items, guided))
            required.append("ip_adapter_image_embeds")
        kwargs = call_kwargs(pipe, wanted, required=required)
        result = pipe(**kwargs)
        return list(to_uint8(result.images))

    def _init_images(self, pipe: Any, items: Sequence[GenerationInput]) -> Any:
        """Start images at the output size; for upscale, the VAE latents enlarged (latent
        upscale) when the VAE is a plain KL autoencoder, else the enlarged pixels."""
        first = items[0]
        size = (first.width, first.height)  # one call's items share their size (pipeline_key)
        pictures = [init_picture(item) for item in items]
        if first.capability is not Capability.UPSCALE or not _latent_vae(pipe):
            return pictures
        small = [Image.fromarray(item.init_image) for item in items]  # type: ignore[arg-type]
        return _upscaled_latents(pipe, small, size)

    def _x4_upscale(
        self, pipe: Any, items: Sequence[GenerationInput], control: RunControl
    ) -> tuple[list[np.ndarray], dict[str, str | int | float | bool]]:
        """The SD x4 upscaler: 4x, then Lanczos down when 2x was asked."""
        outputs = []
        for item in items:
            low = Image.fromarray(item.init_image)  # type: ignore[arg-type]
            result = pipe(
                prompt=item.prompt,
                negative_prompt=item.negative_prompt or None,
                image=low,
                num_inference_steps=self.steps_for(item),
                guidance_scale=item.guidance,
                noise_level=X4_NOISE_LEVEL,
                generator=torch.Generator("cpu").manual_seed(item.seed),
                output_type="np",
                callback_on_step_end=step_callback(control, item.steps),
            )
            big = Image.fromarray(to_uint8(result.images)[0])
            if big.size != (item.width, item.height):
                big = big.resize((item.width, item.height), Image.Resampling.LANCZOS)
            outputs.append(np.asarray(big))
        return outputs, {"upscaler": "sd-x4", "noise_level": X4_NOISE_LEVEL}


def _mask(item: GenerationInput) -> Image.Image:
    mask = Image.fromarray(np.where(item.mask, 255, 0).astype(np.uint8), mode="L")  # type: ignore[arg-type]
    return mask.resize((item.width, item.height), Image.Resampling.NEAREST)


def _latent_vae(pipe: Any) -> bool:
    from diffusers import AutoencoderKL

    processor = getattr(pipe, "image_processor", None)
    return isinstance(getattr(pipe, "vae", None), AutoencoderKL) and processor is not None


@torch.no_grad()
def _upscaled_latents(pipe: Any, images: Sequence[Image.Image], size: tuple[int, int]) -> Any:
    """Encode at the input size, enlarge the latents bicubically to the output size: the
    img2img pass then redraws detail at the new size (hires fix)."""
    vae = pipe.vae
    pixels = pipe.image_processor.preprocess(list(images)).to(vae.device, vae.dtype)  # (B,3,h,w)
    latents = vae.encode(pixels).latent_dist.mode() * vae.config.scaling_factor  # (B,C,h/f,w/f)
    factor = pipe.vae_scale_factor
    target = (size[1] // factor, size[0] // factor)
    if latents.shape[-2:] == target:
        return latents
    return torch.nn.functional.interpolate(latents.float(), size=target, mode="bicubic").to(
        latents.dtype
    )
