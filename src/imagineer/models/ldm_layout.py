"""A Stable Diffusion 1.x diffusers folder written as one original-layout (LDM) checkpoint: the
inverse of the key mapping diffusers' `from_single_file` applies, driven by the folder's
configs, so tiny test pipelines can be registered and loaded as single files offline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."
UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}
_BLOCK = re.compile(
    r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\."
)
_MID = re.compile(r"mid_block\.(resnets|attentions)\.(\d+)\.")
_VAE_BLOCK = re.compile(
    r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\."
)
_VAE_MID = re.compile(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.")


def _renamed(rest: str, table: dict[str, str]) -> str:
    for new, old in table.items():
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


def unet_key(key: str, config: dict[str, object]) -> str:
    """The original name of one diffusers UNet2DConditionModel weight."""
    per = int(config["layers_per_block"]) + 1  # type: ignore[call-overload]
    top = _renamed(key, UNET_TOP)
    if top != key:
        return top
    if m := _BLOCK.match(key):
        side, block, kind, index, rest = m[1], int(m[2]), m[3], int(m[4]), key[m.end() :]
        if kind == "downsamplers":
            return f"input_blocks.{per * (block + 1)}.0.op.{rest.removeprefix('conv.')}"
        if kind == "upsamplers":
            types = config["up_block_types"]
            slot = 2 if "CrossAttn" in types[block] else 1  # type: ignore[index]
            return f"output_blocks.{per * block + per - 1}.{slot}.{rest}"
        resnet = kind == "resnets"
        rest = _renamed(rest, RESNET) if resnet else rest
        layer = per * block + index + (1 if side == "down" else 0)
        name = "input_blocks" if side == "down" else "output_blocks"
        return f"{name}.{layer}.{0 if resnet else 1}.{rest}"
    if m := _MID.match(key):
        kind, index, rest = m[1], int(m[2]), key[m.end() :]
        if kind == "attentions":
            return f"middle_block.1.{rest}"
        return f"middle_block.{2 * index}.{_renamed(rest, RESNET)}"
    raise ValueError(f"UNet weight {key!r} has no place in the original layout")


def vae_key(key: str, up_blocks: int) -> str:
    """The original name of one diffusers AutoencoderKL weight."""
    key = key.replace("conv_norm_out", "norm_out")
    if m := _VAE_BLOCK.match(key):
        part, side, block, kind, index, rest = (
            m[1],
            m[2],
            int(m[3]),
            m[4],
            int(m[5]),
            key[m.end() :],
        )
        block = block if side == "down" else up_blocks - 1 - block  # the decoder counts upward
        if kind == "resnets":
            rest = rest.replace("conv_shortcut", "nin_shortcut")
            return f"{part}.{side}.{block}.block.{index}.{rest}"
        return f"{part}.{side}.{block}.{'downsample' if side == 'down' else 'upsample'}.{rest}"
    if m := _VAE_MID.match(key):
        part, kind, index, rest = m[1], m[2], int(m[3]), key[m.end() :]
        if kind == "resnets":
            return f"{part}.mid.block_{index + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        return f"{part}.mid.attn_1.{_renamed(rest, VAE_ATTENTION)}"
    return key


def original_state(folder: Path) -> dict[str, torch.Tensor]:
    """Every UNet, VAE and CLIP text encoder weight of an SD 1.x folder, by original name."""
    from safetensors.torch import load_file

    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    state: dict[str, torch.Tensor] = {}
    for key, value in load_file(
        str(folder / "unet" / "diffusion_pytorch_model.safetensors")
    ).items():
        state[UNET_PREFIX + unet_key(key, unet_config)] = value
    up_blocks = len(vae_config["up_block_types"])
    for key, value in load_file(
        str(folder / "vae" / "diffusion_pytorch_model.safetensors")
    ).items():
        name = vae_key(key, up_blocks)
        if ".mid.attn_1." in name and value.ndim == 2:
            value = value[:, :, None, None]  # the original attention projections are 1x1 convs
        state[VAE_PREFIX + name] = value
    for key, value in load_file(str(folder / "text_encoder" / "model.safetensors")).items():
        state[TEXT_PREFIX + (key if key.startswith("text_model.") else "text_model." + key)] = value
    return state


def save_single_file(folder: Path, path: Path) -> Path:
    """Write `folder` (an SD 1.x diffusers pipeline) as one original-layout .safetensors."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in original_state(folder).items()}
    save_file(state, str(path), metadata={"modelspec.license": "MIT"})
    return path
