"""The embedded denoiser: a small text-conditioned UNet predicting rectified-flow velocity."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from imagineer.engines.embedded.text import HIDDEN, TextStates


@dataclass(frozen=True)
class UNetConfig:
    """Shape of the denoiser; saved beside the weights so loading needs no code changes."""

    in_channels: int = 3  # RGB pixels in [-1, 1]: at 32 px a latent space buys nothing
    channels: tuple[int, ...] = (
        32,
        64,
        128,
    )  # width per level (32, 16, 8 px); sized for 2 CPU cores
    blocks: tuple[int, ...] = (1, 2, 2)  # residual blocks per level on the way down
    self_attn: tuple[bool, ...] = (False, False, True)  # global mixing only at 8 px: cheap on CPU
    cross_attn: tuple[bool, ...] = (True, True, True)  # text at every level: binds words to places
    text_dim: int = HIDDEN  # width of the frozen encoder's token states
    cond_dim: int = 256  # width of the trainable text adapter and attention
    adapter_layers: int = 2  # trainable transformer layers over the frozen encoder
    heads: int = 4
    time_dim: int = 256
    groups: int = 16  # GroupNorm groups
    coords: bool = True  # periodic x/y channels: lets "on the left" find the left, still tileable
    # Periodic x/y added to every attention query (and self-attention key): a pixel's question to
    # the text then depends on where it is, which "on the left" needs (zero-initialised).
    attn_coords: bool = True

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def tiny(cls) -> UNetConfig:
        """A few-channel shape for tests and load benches: milliseconds per step, no quality."""
        return cls(
            channels=(8, 16),
            blocks=(1, 1),
            self_attn=(False, True),
            cross_attn=(True, True),
            cond_dim=32,
            adapter_layers=1,
            heads=2,
            time_dim=32,
            groups=4,
        )

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> UNetConfig:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        fields.setdefault("attn_coords", False)  # saved before it existed: made without it
        return cls(**fields)  # type: ignore[arg-type]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)  # scale and shift from time + pooled text
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class Attention(nn.Module):
    """Self-attention over pixels, or cross-attention from pixels to text tokens."""

    def __init__(
        self,
        channels: int,
        heads: int,
        groups: int,
        context_dim: int | None,
        coords: bool = False,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.q = nn.Linear(channels, channels)
        kv_in = context_dim if context_dim is not None else channels
        self.kv = nn.Linear(kv_in, 2 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # Where the pixel is, added to its query (and, in self-attention, its key). Zero at first,
        # so a model grown from one without it starts out computing exactly the same.
        self.pos: nn.Linear | None = None
        if coords:
            self.pos = nn.Linear(4, channels * (1 if context_dim is not None else 2))
            nn.init.zeros_(self.pos.weight)
            nn.init.zeros_(self.pos.bias)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        source = seq if context is None else context
        q = self.q(seq)
        k, v = self.kv(source).chunk(2, dim=-1)
        if self.pos is not None:
            where = self.pos(periodic_coords(b, h, w, seq).flatten(2).transpose(1, 2))
            if context is None:
                dq, dk = where.chunk(2, dim=-1)
                q, k = q + dq, k + dk
            else:
                q = q + where
        q, k, v = (t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, L)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, heads, HW, d)
        out = self.out(out.transpose(1, 2).reshape(b, h * w, c))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class Level(nn.Module):
    """Residual blocks at one resolution, each followed by the attention this level uses."""

    def __init__(
        self, cin: int, cout: int, n: int, cfg: UNetConfig, self_attn: bool, cross: bool
    ) -> None:
        super().__init__()
        self.res = nn.ModuleList(
            ResBlock(cin if i == 0 else cout, cout, cfg.time_dim, cfg.groups) for i in range(n)
        )
        self.self_attn = nn.ModuleList(
            Attention(cout, cfg.heads, cfg.groups, None, cfg.attn_coords)
            if self_attn
            else nn.Identity()
            for _ in range(n)
        )
        self.cross = nn.ModuleList(
            Attention(cout, cfg.heads, cfg.groups, cfg.cond_dim, cfg.attn_coords)
            if cross
            else nn.Identity()
            for _ in range(n)
        )

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        for res, sa, ca in zip(self.res, self.self_attn, self.cross, strict=True):
            x = res(x, emb)
            if isinstance(sa, Attention):
                x = sa(x)
            if isinstance(ca, Attention):
                x = ca(x, ctx, mask)
        return x


class TextAdapter(nn.Module):
    """Trainable layers over the frozen encoder: token context and a pooled vector."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(cfg.text_dim, cfg.cond_dim)
        layer = nn.TransformerEncoderLayer(
            cfg.cond_dim,
            cfg.heads,
            2 * cfg.cond_dim,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, cfg.adapter_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.cond_dim)
        self.pool = nn.Linear(cfg.cond_dim, cfg.time_dim)

    def forward(self, text: TextStates) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.layers(self.proj(text.tokens), src_key_padding_mask=~text.mask)
        h = self.norm(h)  # (B, L, cond_dim)
        weights = text.mask.float()[..., None]
        pooled = (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, cond_dim)
        return h, self.pool(pooled)


class UNet(nn.Module):
    """Predicts v = noise - image for a noisy image x_t at time t, given text."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = len(cfg.channels)
        extra = 4 if cfg.coords else 0
        self.stem = nn.Conv2d(cfg.in_channels + extra, cfg.channels[0], 3, padding=1)
        self.time = nn.Sequential(
            nn.Linear(cfg.time_dim, cfg.time_dim), nn.SiLU(), nn.Linear(cfg.time_dim, cfg.time_dim)
        )
        self.text = TextAdapter(cfg)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        cin = cfg.channels[0]
        for i, ch in enumerate(cfg.channels):
            self.down.append(
                Level(cin, ch, cfg.blocks[i], cfg, cfg.self_attn[i], cfg.cross_attn[i])
            )
            self.downsample.append(
                nn.Conv2d(ch, ch, 3, stride=2, padding=1) if i < n - 1 else nn.Identity()
            )
            cin = ch
        top = cfg.channels[-1]
        self.mid = Level(top, top, 1, cfg, True, True)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(n)):
            ch = cfg.channels[i]
            self.up.append(
                Level(cin + ch, ch, cfg.blocks[i] + 1, cfg, cfg.self_attn[i], cfg.cross_attn[i])
            )
            self.upsample.append(
                nn.Conv2d(ch, cfg.channels[i - 1], 3, padding=1) if i > 0 else nn.Identity()
            )
            cin = cfg.channels[i - 1] if i > 0 else ch
        self.out_norm = nn.GroupNorm(cfg.groups, cfg.channels[0])
        self.out = nn.Conv2d(cfg.channels[0], cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]

    def set_tiling(self, tile: bool) -> None:
        """Circular padding makes outputs tile seamlessly (--tile)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module.padding != (0, 0):
                module.padding_mode = "circular" if tile else "zeros"

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: TextStates) -> torch.Tensor:
        b, _, h, w = x.shape  # (B, 3, H, W)
        ctx, pooled = self.text(text)
        emb = self.time(timestep_embedding(t, self.cfg.time_dim)) + pooled  # (B, time_dim)
        if self.cfg.coords:
            x = torch.cat([x, periodic_coords(b, h, w, x)], dim=1)
        x = self.stem(x)
        skips = []
        for level, down in zip(self.down, self.downsample, strict=True):
            x = level(x, emb, ctx, text.mask)
            skips.append(x)
            x = down(x)
        x = self.mid(x, emb, ctx, text.mask)
        for level, up in zip(self.up, self.upsample, strict=True):
            skip = skips.pop()
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = level(torch.cat([x, skip], dim=1), emb, ctx, text.mask)
            x = up(x)
        return self.out(F.silu(self.out_norm(x)))


def periodic_coords(b: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) sin/cos of x and y over one period: position without breaking tiling."""
    ys = (torch.arange(h, device=like.device, dtype=like.dtype) + 0.5) / h
    xs = (torch.arange(w, device=like.device, dtype=like.dtype) + 0.5) / w
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    angle_x, angle_y = 2 * math.pi * gx, 2 * math.pi * gy
    grid = torch.stack([angle_x.sin(), angle_x.cos(), angle_y.sin(), angle_y.cos()])
    return grid[None].expand(b, -1, -1, -1)


def grows_into(old: UNetConfig, new: UNetConfig) -> bool:
    """Whether weights of `old` load into `new` by adding only zero-initialised parts."""
    return old == new or (not old.attn_coords and replace(old, attn_coords=True) == new)


def load_grown(model: UNet, state: dict[str, torch.Tensor], old: UNetConfig) -> bool:
    """Load weights saved with config `old` into `model`; True if the model had to grow.

    Only growth that starts out computing the same is allowed (see grows_into); anything else
    raises, naming both shapes.
    """
    if not grows_into(old, model.cfg):
        raise ValueError(f"weights of a UNet shaped {old} do not fit one shaped {model.cfg}")
    result = model.load_state_dict(state, strict=False)
    added = [k for k in result.missing_keys if ".pos." not in k]
    if result.unexpected_keys or added:
        raise ValueError(
            f"weights do not fit: unexpected {result.unexpected_keys}, missing {added}"
        )
    return bool(result.missing_keys)
