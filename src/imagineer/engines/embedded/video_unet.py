"""The embedded video denoiser: the image UNet grown with temporal attention and clip conditioning.

A clip is F frames denoised together. Every frame goes through the image UNet's layers as an
image; after each level, temporal attention lets every pixel look at the same place in the other
frames. Conditioning: the clip's start frame (and, for --end and --loop, its end frame) is given
to every frame as extra input channels, with a flag plane saying whether each is present; the
camera move and the --motion level add a learned vector to the time embedding. Frames that are
known outright (the last frames of the clip being extended) enter the sequence clean, at t = 0.

All new parts start at zero, so a VideoUNet grown from image weights first draws each frame as
the image model would: training only has to learn the motion.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from imagineer.engines.embedded.text import TextStates
from imagineer.engines.embedded.unet import UNet, UNetConfig, periodic_coords, timestep_embedding
from imagineer.video.camera import CAMERA_MOVES, MOTIONS

COND_CHANNELS = 3 + 3 + 2  # start frame, end frame, one flag plane each


@dataclass(frozen=True)
class VideoUNetConfig:
    """Shape of the video denoiser; saved beside its weights."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    frames: int = 16  # frames per window the model was trained on
    temporal_heads: int = 4
    max_frames: int = 64  # frame positions the temporal embedding covers
    # The conditioning also says whether the light moves on to the next time of day during the
    # clip (the world's clips do that a quarter of the time): told, the model holds the light
    # still otherwise instead of drifting at random.
    light_change: bool = True

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> VideoUNetConfig:
        fields = dict(data)
        fields.setdefault("light_change", False)  # saved before it existed: made without it
        unet = fields.pop("unet")
        if not isinstance(unet, dict):
            raise ValueError("video config without its 'unet' shape")
        return cls(unet=UNetConfig.from_dict(unet), **fields)  # type: ignore[arg-type]


CAMERA_CLASSES = len(CAMERA_MOVES) * len(MOTIONS)


def camera_index(move: str, motion: str, light_change: bool = False) -> int:
    """The class of a camera move at a --motion level, and whether the light changes (what the
    model is told about a clip besides its text and frames)."""
    index = CAMERA_MOVES.index(move) * len(MOTIONS) + MOTIONS.index(motion)
    return index + (CAMERA_CLASSES if light_change else 0)


class TemporalAttention(nn.Module):
    """Attention across frames at each pixel: (B*F, C, H, W) -> the same, zero at first."""

    def __init__(self, channels: int, heads: int, groups: int, max_frames: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.pos = nn.Embedding(max_frames, channels)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        bf, c, h, w = x.shape
        b = bf // frames
        seq = self.norm(x).reshape(b, frames, c, h * w).permute(0, 3, 1, 2)  # (B, HW, F, C)
        seq = seq + self.pos.weight[:frames]
        q, k, v = self.qkv(seq).chunk(3, dim=-1)
        q, k, v = (t.reshape(b * h * w, frames, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # (BHW, heads, F, d)
        out = self.out(out.transpose(1, 2).reshape(b, h * w, frames, c))
        return x + out.permute(0, 2, 3, 1).reshape(bf, c, h, w)


@dataclass(frozen=True)
class ClipCondition:
    """What a window of frames is conditioned on (one entry per clip in the batch)."""

    start: torch.Tensor  # (B, 3, h, w) in [-1, 1]: the clip's first frame (zeros if none)
    end: torch.Tensor  # (B, 3, h, w): its last frame (zeros if none)
    has_start: torch.Tensor  # (B,) float 0/1
    has_end: torch.Tensor  # (B,) float 0/1
    camera: torch.Tensor  # (B,) long, camera_index()

    def planes(self, frames: int) -> torch.Tensor:
        """(B*F, COND_CHANNELS, h, w): the same conditioning for every frame of each clip."""
        b, _, h, w = self.start.shape
        flags = torch.stack([self.has_start, self.has_end], dim=1).to(self.start.dtype)
        planes = torch.cat(
            [self.start, self.end, flags[:, :, None, None].expand(b, 2, h, w)], dim=1
        )
        return planes.repeat_interleave(frames, dim=0)

    def to(self, device: torch.device | str) -> ClipCondition:
        return ClipCondition(
            start=self.start.to(device),
            end=self.end.to(device),
            has_start=self.has_start.to(device),
            has_end=self.has_end.to(device),
            camera=self.camera.to(device),
        )


class VideoUNet(UNet):
    """Predicts rectified-flow velocity for every frame of a window of F frames."""

    def __init__(self, cfg: VideoUNetConfig) -> None:
        super().__init__(cfg.unet)
        self.video_cfg = cfg
        u = cfg.unet
        extra = 4 if u.coords else 0
        self.image_in = u.in_channels + extra
        self.stem = nn.Conv2d(self.image_in + COND_CHANNELS, u.channels[0], 3, padding=1)
        classes = CAMERA_CLASSES * (2 if cfg.light_change else 1)
        self.camera = nn.Embedding(classes, u.time_dim)
        nn.init.zeros_(self.camera.weight)
        top = u.channels[-1]
        self.temporal_down = nn.ModuleList(
            TemporalAttention(ch, cfg.temporal_heads, u.groups, cfg.max_frames) for ch in u.channels
        )
        self.temporal_mid = TemporalAttention(top, cfg.temporal_heads, u.groups, cfg.max_frames)
        self.temporal_up = nn.ModuleList(
            TemporalAttention(u.channels[i], cfg.temporal_heads, u.groups, cfg.max_frames)
            for i in reversed(range(len(u.channels)))
        )

    def load_grown(self, state: dict[str, torch.Tensor]) -> bool:
        """Load video weights, growing the conditioning table if they predate `light_change`
        (both halves start as the old rows: the model first ignores the new flag). True if it
        grew."""
        old = state["camera.weight"]
        own = self.camera.weight
        grew = old.shape[0] == CAMERA_CLASSES and own.shape[0] == 2 * CAMERA_CLASSES
        if grew:
            state = {**state, "camera.weight": torch.cat([old, old])}
        self.load_state_dict(state)
        return grew

    def load_image_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Start from the image model: its weights, the new input channels and layers at zero."""
        own = self.state_dict()
        stem = state["stem.weight"]
        grown = torch.zeros_like(own["stem.weight"])
        grown[:, : stem.shape[1]] = stem
        result = self.load_state_dict({**state, "stem.weight": grown}, strict=False)
        new = ("temporal_", "camera.")
        missing = [k for k in result.missing_keys if not k.startswith(new)]
        if result.unexpected_keys or missing:
            raise ValueError(
                f"image weights do not fit: unexpected {result.unexpected_keys}, missing {missing}"
            )

    def forward_clip(
        self, x: torch.Tensor, t: torch.Tensor, text: TextStates, cond: ClipCondition
    ) -> torch.Tensor:
        """x (B*F, 3, h, w) frames clip by clip, t (B*F,) per frame, text and cond per clip."""
        b = cond.camera.shape[0]
        frames = x.shape[0] // b
        if frames * b != x.shape[0] or frames > self.video_cfg.max_frames:
            raise ValueError(
                f"{x.shape[0]} frames do not split into {b} clips of at most "
                f"{self.video_cfg.max_frames}"
            )
        ctx, pooled = self.text(text)
        pooled = pooled + self.camera(cond.camera)
        ctx = ctx.repeat_interleave(frames, dim=0)
        mask = text.mask.repeat_interleave(frames, dim=0)
        emb = self.time(timestep_embedding(t, self.cfg.time_dim)) + pooled.repeat_interleave(
            frames, dim=0
        )
        _, _, h, w = x.shape
        parts = [x]
        if self.cfg.coords:
            parts.append(periodic_coords(x.shape[0], h, w, x))
        parts.append(cond.planes(frames).to(x.dtype))
        x = self.stem(torch.cat(parts, dim=1))
        skips = []
        for level, down, temporal in zip(
            self.down, self.downsample, self.temporal_down, strict=True
        ):
            x = temporal(level(x, emb, ctx, mask), frames)
            skips.append(x)
            x = down(x)
        x = self.temporal_mid(self.mid(x, emb, ctx, mask), frames)
        for level, up, temporal in zip(self.up, self.upsample, self.temporal_up, strict=True):
            skip = skips.pop()
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = up(temporal(level(torch.cat([x, skip], dim=1), emb, ctx, mask), frames))
        return self.out(F.silu(self.out_norm(x)))


def shifted_times(z: torch.Tensor, shift: float) -> torch.Tensor:
    """Logit-normal times moved towards noise by `shift` (1: unchanged)."""
    return torch.sigmoid(z + math.log(shift))
