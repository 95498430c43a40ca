"""Euler sampling of the rectified flow with guidance, per-item seeds and callbacks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from imagineer.engines.base import RunControl
from imagineer.engines.embedded.text import TextStates
from imagineer.engines.embedded.unet import UNet


@dataclass(frozen=True)
class SampleItem:
    """One image to sample: its noise seed, guidance and (for image-to-image) a start."""

    seed: int
    guidance: float
    start: torch.Tensor | None = None  # (3, H, W) in [-1, 1] for image-to-image
    strength: float = 1.0  # 1: from pure noise; s < 1: start at t = s from `start`


def initial_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """The noise of one item, from its own generator: batch size never changes an item."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=gen)


@torch.no_grad()
def sample(
    model: UNet,
    items: Sequence[SampleItem],
    cond: TextStates,
    uncond: TextStates,
    *,
    height: int,
    width: int,
    steps: int,
    control: RunControl,
) -> torch.Tensor:
    """Integrate from noise (t = 1) to image (t = 0); returns (B, 3, H, W) in [-1, 1]."""
    # 1. start points: noise, or a noised input image for image-to-image
    device = next(model.parameters()).device
    noise = torch.stack([initial_noise(it.seed, (3, height, width)) for it in items]).to(device)
    t_start = torch.tensor([it.strength if it.start is not None else 1.0 for it in items])
    x = noise.clone()
    for i, it in enumerate(items):
        if it.start is not None:
            s = float(t_start[i])
            x[i] = (1 - s) * it.start.to(device) + s * noise[i]
    guidance = torch.tensor([it.guidance for it in items], device=device)[:, None, None, None]
    both = TextStates.cat([cond, uncond]).to(device)
    # 2. denoise: each item walks its own time grid from t_start to 0 in `steps` Euler steps
    fractions = torch.linspace(1.0, 0.0, steps + 1)
    for k in range(steps):
        t = (t_start * fractions[k]).to(device)  # (B,)
        t_next = (t_start * fractions[k + 1]).to(device)
        v_cond, v_uncond = model(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
        v = v_uncond + guidance * (v_cond - v_uncond)  # (B, 3, H, W)
        x = x + (t_next - t)[:, None, None, None] * v
        preview = None
        if control.wants_preview(k + 1):
            preview = x - t_next[:, None, None, None] * v  # the current guess of the image
        control.step(k + 1, steps, None if preview is None else to_uint8(preview[0]).numpy())
    return x.clamp(-1, 1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu()
