"""Affine warps of frame batches, and the temporal step: motion-compensated interpolation.

Frames are (N, C, H, W) float tensors; camera matrices come from `imagineer.video.camera`
as (N, 2, 3) maps from output to source coordinates in grid_sample's [-1, 1] convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from imagineer.video.camera import relative

VALID_MARGIN = 1e-3  # source coordinates this far past the edge still count as inside
CHUNK = 32  # output frames warped per grid_sample call (bounds memory at large sizes)


def _grid(mats: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    theta = torch.as_tensor(np.asarray(mats), dtype=torch.float32)
    if theta.ndim == 2:
        theta = theta[None]
    h, w = size
    return F.affine_grid(theta, [theta.shape[0], 1, h, w], align_corners=False)  # (N, H, W, 2)


def warp(
    images: torch.Tensor, mats: np.ndarray | torch.Tensor, *, mode: str = "bilinear"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample each image at its matrix: (warped (N, C, H, W), inside (N, 1, H, W) bool).

    Pixels whose source lies outside the picture repeat its border and are marked outside.
    """
    grid = _grid(mats, (images.shape[-2], images.shape[-1])).to(images.device)
    if images.shape[0] == 1 and grid.shape[0] > 1:
        images = images.expand(grid.shape[0], -1, -1, -1)
    padding = "border" if mode != "nearest" else "zeros"
    out = F.grid_sample(images, grid, mode=mode, padding_mode=padding, align_corners=False)
    inside = (grid.abs() <= 1.0 + VALID_MARGIN).all(dim=-1)[:, None]  # (N, 1, H, W)
    return out, inside


def smoothstep(t: float) -> float:
    t = min(1.0, max(0.0, t))
    return t * t * (3.0 - 2.0 * t)


def interpolate(
    frames: torch.Tensor,
    count: int,
    *,
    mats: np.ndarray | None = None,
    out_mats: np.ndarray | None = None,
    loop: bool = False,
) -> torch.Tensor:
    """`count` frames spread over the clip that `frames` (B, C, H, W) sample evenly.

    With the camera's matrices of the base frames (`mats`, (B, 2, 3)) and of the output frames
    (`out_mats`, (count, 2, 3)), each output frame is the blend of its two neighbours, each
    warped to the output frame's pose first (motion-compensated); without them, a plain blend.
    `loop`: the output spans the base clip minus its last frame, which equals the first, so
    the clip plays round seamlessly.
    """
    base = frames.shape[0]
    if count < 1:
        raise ValueError(f"count={count}: use at least 1")
    if (mats is None) != (out_mats is None):
        raise ValueError("give both mats and out_mats, or neither")
    if mats is not None and out_mats is not None and (len(mats) != base or len(out_mats) != count):
        raise ValueError(f"{len(mats)} base and {len(out_mats)} output matrices for {base}/{count}")
    pos = frame_positions(base, count, loop=loop)
    lo = np.minimum(np.floor(pos).astype(int), max(0, base - 2))
    alpha = torch.tensor(pos - lo, dtype=frames.dtype).view(-1, 1, 1, 1)
    hi = np.minimum(lo + 1, base - 1)
    out = []
    for start in range(0, count, CHUNK):
        idx = slice(start, start + CHUNK)
        a, b = (
            _aligned(frames, lo[idx], mats, out_mats, idx),
            _aligned(frames, hi[idx], mats, out_mats, idx),
        )
        out.append((1 - alpha[idx]) * a + alpha[idx] * b)
    return torch.cat(out)


def frame_positions(base: int, count: int, *, loop: bool = False) -> np.ndarray:
    """(count,) where each output frame falls between the `base` frames (0 .. base - 1)."""
    span = (base - 1) / count if loop else (base - 1) / max(1, count - 1)
    return np.minimum(np.arange(count) * span, base - 1.0)


def lerp_mats(mats: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(len(positions), 2, 3): `mats` (base, 2, 3) blended linearly at fractional positions."""
    lo = np.minimum(np.floor(positions).astype(int), max(0, len(mats) - 2))
    hi = np.minimum(lo + 1, len(mats) - 1)
    alpha = (positions - lo)[:, None, None]
    return (1 - alpha) * mats[lo] + alpha * mats[hi]


def estimate_motion(
    frames: torch.Tensor, init: np.ndarray, *, iterations: int = 60, blur: float = 0.8
) -> np.ndarray:
    """(N, 2, 3): for each frame, the similarity (zoom, roll, shift) that best maps it onto the
    first frame, so that `warp(frames[:1], mats)` ≈ `frames` — the picture's global motion.

    `init` (N, 2, 3) is where the search starts (the camera's planned motion); the first frame's
    matrix stays the identity. Things that move on their own do not pull the fit far: the error
    is an absolute difference (L1), which the still background outvotes.
    """
    n = frames.shape[0]
    if n < 2:
        return np.asarray(init, dtype=np.float64).copy()
    m = torch.as_tensor(np.asarray(init), dtype=torch.float32)
    scale = torch.sqrt((m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]).abs().clamp(min=1e-6))
    params = (
        torch.stack(
            [scale.log(), torch.atan2(m[:, 1, 0], m[:, 0, 0]), m[:, 0, 2], m[:, 1, 2]], dim=1
        )[1:]
        .clone()
        .requires_grad_(True)
    )
    with torch.no_grad():
        target = gaussian_blur(frames[1:].float(), blur)
        first = gaussian_blur(frames[:1].float(), blur).expand(n - 1, -1, -1, -1)
    opt = torch.optim.Adam([params], lr=0.01)
    h, w = frames.shape[-2:]
    with torch.enable_grad():  # callers sample under no_grad; the fit needs gradients
        for _ in range(iterations):
            theta = _similarity(params)
            grid = F.affine_grid(theta, [n - 1, 1, h, w], align_corners=False)
            seen = F.grid_sample(first, grid, padding_mode="border", align_corners=False)
            inside = (grid.abs() <= 1.0).all(dim=-1)[:, None].float()
            err = ((seen - target).abs() * inside).sum()
            loss = err / (inside.sum() * frames.shape[1] + 1e-6)
            opt.zero_grad()
            loss.backward()
            opt.step()
    out = np.zeros((n, 2, 3))
    out[0] = [[1, 0, 0], [0, 1, 0]]
    out[1:] = _similarity(params.detach()).numpy()
    return out


def _similarity(params: torch.Tensor) -> torch.Tensor:
    """(N, 4) log zoom-out, roll, x, y -> (N, 2, 3) affine matrices."""
    s, r = params[:, 0].exp(), params[:, 1]
    cos, sin = s * torch.cos(r), s * torch.sin(r)
    row0 = torch.stack([cos, -sin, params[:, 2]], dim=1)
    row1 = torch.stack([sin, cos, params[:, 3]], dim=1)
    return torch.stack([row0, row1], dim=1)


def _aligned(
    frames: torch.Tensor,
    picks: np.ndarray,
    mats: np.ndarray | None,
    out_mats: np.ndarray | None,
    idx: slice,
) -> torch.Tensor:
    """Base frames `picks`, each warped to the pose of its output frame when poses are known."""
    chosen = frames[torch.as_tensor(picks)]
    if mats is None or out_mats is None:
        return chosen
    rel = np.stack([relative(mats[k], m) for k, m in zip(picks, out_mats[idx], strict=True)])
    return warp(chosen, rel)[0]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflected edges."""
    if sigma <= 0:
        return x
    radius = max(1, round(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    kx = kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    x = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    x = F.conv2d(x, kx, groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(x, ky, groups=c)


def to_uint8_frames(x: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, H, W) in [-1, 1] -> N arrays (H, W, 3) uint8."""
    u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(frame) for frame in u8]


def from_uint8_frames(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """N arrays (H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1]."""
    stacked = np.stack([np.asarray(f) for f in frames])
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).float() / 127.5 - 1
