"""The embedded engine: samples at 1/8 of the output size, then upscales in learned 2x steps."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from imagineer.engines.base import (
    Capability,
    EngineError,
    EngineInfo,
    GenerationInput,
    GenerationOutput,
    RunControl,
    check_batch,
    run_in_groups,
)
from imagineer.engines.embedded.sampler import SampleItem, initial_noise, sample
from imagineer.engines.embedded.style import StyleReader
from imagineer.engines.embedded.text import TextEncoder, TextStates
from imagineer.engines.embedded.unet import UNet, UNetConfig
from imagineer.engines.embedded.upscaler import Upscaler, UpscalerConfig

UNET_FILE = "embedded_unet.safetensors"
UPSCALER_FILE = "embedded_upscaler.safetensors"
FACTOR = 8  # output side / sampled side: three learned 2x steps
DEFAULT_STEPS = 8  # measured: adherence at 8 steps equals 12 (0.719 vs 0.726), grid in < 1 s
# --weird pushes away from what the model draws for a plain, generic prompt.
TYPICAL_PROMPT = "a photo of a landscape"


def weights_dir() -> Path:
    """The folder of weights shipped inside the package."""
    return Path(str(resources.files("imagineer") / "weights"))


def weights_available(folder: Path | None = None) -> str | None:
    """None when the shipped weights are present, else what is missing."""
    folder = folder or weights_dir()
    missing = [name for name in (UNET_FILE, UPSCALER_FILE) if not (folder / name).exists()]
    if missing:
        return f"missing {', '.join(missing)} in {folder} (train with `imagineer train`)"
    return None


def _file_hash(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Exported:
    """An exported weights file: its shape config, float32 weights and the other metadata."""

    config: dict[str, object]
    state: dict[str, torch.Tensor]
    meta: dict[str, str]


def read_exported(path: Path) -> Exported:
    """Read a file written by `imagineer train` (the engine, --init and resumes all use it)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise EngineError(f"{path} has no 'config' metadata: export it with `imagineer train`")
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    return Exported(json.loads(meta["config"]), state, meta)


@dataclass(frozen=True)
class _Prepared:
    """Per-item conditioning derived from one GenerationInput."""

    item: SampleItem
    text: TextStates
    uncond: TextStates


class EmbeddedEngine:
    """imagineer's own model: text-to-image, image-to-image and upscale, on CPU or CUDA."""

    def __init__(
        self,
        unet: UNet,
        upscaler: Upscaler,
        text: TextEncoder,
        *,
        model_hash: str,
        model_id: str = "imagineer-embedded-world-v1",
    ) -> None:
        self.unet = unet.eval()
        self.folder: Path | None = None  # where load() read the weights (video weights sit there)
        self.upscaler = upscaler.eval()
        self.text = text
        self.device = next(unet.parameters()).device
        self.styles = StyleReader(str(self.device))
        self._info = EngineInfo(
            name="embedded",
            family="embedded",
            capabilities=frozenset(
                {Capability.TEXT_TO_IMAGE, Capability.IMAGE_TO_IMAGE, Capability.UPSCALE}
            ),
            model_id=model_id,
            model_hash=model_hash,
            base_area=(32 * FACTOR) ** 2,
            size_multiple=8 * FACTOR,
            default_steps=DEFAULT_STEPS,
            default_guidance=5.0,
            max_batch=16,
            takes_style=True,
            licence="Apache-2.0 (weights trained by imagineer on its procedural world)",
            notes=("samples at 1/8 of the output size, then three learned 2x upscales",),
        )

    @classmethod
    def load(cls, folder: Path | None = None, *, device: str = "cpu") -> EmbeddedEngine:
        """The engine from shipped (or given) weights; no network."""
        folder = folder or weights_dir()
        why_not = weights_available(folder)
        if why_not is not None:
            raise EngineError(why_not)
        unet_path, up_path = folder / UNET_FILE, folder / UPSCALER_FILE
        unet_file, up_file = read_exported(unet_path), read_exported(up_path)
        unet = UNet(UNetConfig.from_dict(unet_file.config))
        unet.load_state_dict(unet_file.state)
        upscaler = Upscaler(UpscalerConfig(**up_file.config))  # type: ignore[arg-type]
        upscaler.load_state_dict(up_file.state)
        engine = cls(
            unet.to(device),
            upscaler.to(device),
            TextEncoder(device),
            model_hash=_file_hash([unet_path, up_path]),
        )
        engine.folder = folder
        return engine

    @property
    def info(self) -> EngineInfo:
        return self._info

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        check_batch(self, batch)

        def run(items: list[GenerationInput]) -> list[GenerationOutput]:
            if items[0].capability is Capability.UPSCALE:
                return [self._upscale(item) for item in items]
            return self._generate_group(items, control)

        return run_in_groups(batch, run)

    def sample_base(self, batch: Sequence[GenerationInput], control: RunControl) -> torch.Tensor:
        """Sample at the base size only: (B, 3, h, w) in [-1, 1] (no upscaling)."""
        # 1. check inputs
        first = batch[0]
        h, w = first.height // FACTOR, first.width // FACTOR
        # 2. encode prompts (cond, then negative or empty prompt for guidance)
        prepared = [self._prepare(item, h, w) for item in batch]
        cond = TextStates.cat([p.text for p in prepared])
        uncond = TextStates.cat([p.uncond for p in prepared])
        # 3-4. prepare noise and denoise
        self.unet.set_tiling(first.tile)
        try:
            return sample(
                self.unet,
                [p.item for p in prepared],
                cond,
                uncond,
                height=h,
                width=w,
                steps=first.steps,
                control=control,
            )
        finally:
            self.unet.set_tiling(False)

    def _generate_group(
        self, items: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        x = self.sample_base(items, control)
        # 5. decode: three learned 2x steps to the requested size
        self.upscaler.set_tiling(items[0].tile)
        try:
            big = self.upscaler.upscale(x, FACTOR)
        finally:
            self.upscaler.set_tiling(False)
        return [
            GenerationOutput(
                frames=(_to_array(big[i]),),
                seed=item.seed,
                steps=item.steps,
                guidance=item.guidance,
                extras=(("base_size", f"{x.shape[-1]}x{x.shape[-2]}"), *self.styles.extras(item)),
            )
            for i, item in enumerate(items)
        ]

    def _prepare(self, item: GenerationInput, h: int, w: int) -> _Prepared:
        text = self._weighted_text(item)
        uncond = self.text.encode([item.negative_prompt])
        if item.weird > 0:
            typical = self.text.encode([TYPICAL_PROMPT])
            uncond = _mix(uncond, typical, item.weird)
        if item.chaos > 0:
            text = _jitter(text, item.chaos, item.seed)
        start = None
        if item.capability is Capability.IMAGE_TO_IMAGE:
            if item.init_image is None:
                raise EngineError("image-to-image needs an init image")
            start = _from_array(item.init_image, h, w)
        guidance = item.guidance * (1.0 + 0.5 * item.chaos * _unit(item.seed))
        sample_item = SampleItem(
            item.seed, guidance, start, item.strength if start is not None else 1.0
        )
        return _Prepared(sample_item, text, uncond)

    def _weighted_text(self, item: GenerationInput) -> TextStates:
        """Multi-prompts: token states of each part (moved toward the --sref looks), scaled by
        its share of the weights."""
        parts = item.weighted_prompts or ((item.prompt, 1.0),)
        if len(parts) == 1:
            return self.styles.encode(self.text.encode, parts[0][0], item)
        total = sum(weight for _, weight in parts)
        states = [self.styles.encode(self.text.encode, text, item) for text, _ in parts]
        scaled = [
            TextStates(s.tokens * (weight / total * len(parts)), s.mask)
            for s, (_, weight) in zip(states, parts, strict=True)
        ]
        # Concatenate along tokens: cross-attention sees every part, weighted by scale.
        return TextStates(
            torch.cat([s.tokens for s in scaled], dim=1), torch.cat([s.mask for s in scaled], dim=1)
        )

    def _upscale(self, item: GenerationInput) -> GenerationOutput:
        if item.init_image is None:
            raise EngineError("upscale needs an input image")
        if item.scale not in (2, 4, 8):
            raise EngineError(f"upscale factor {item.scale}: the embedded upscaler does 2, 4 or 8")
        src = item.init_image
        x = torch.from_numpy(src).permute(2, 0, 1)[None].float().to(self.device) / 127.5 - 1
        big = self.upscaler.upscale(x, item.scale)
        return GenerationOutput((_to_array(big[0]),), item.seed, 1, 0.0, (("scale", item.scale),))


def _unit(seed: int) -> float:
    """A number in [-1, 1] fixed by the seed (per-item variation for --chaos)."""
    return float(initial_noise(seed ^ 0x5EED, (1,)).tanh())


def _jitter(text: TextStates, chaos: float, seed: int) -> TextStates:
    """--chaos: perturb the prompt's token states per item, so a grid's images differ more."""
    noise = initial_noise(seed ^ 0xC4A05, tuple(text.tokens.shape)).to(text.tokens.device)
    scale = chaos * 0.6 * float(text.tokens[text.mask].std())
    return TextStates(text.tokens + scale * noise * text.mask[..., None], text.mask)


def _mix(a: TextStates, b: TextStates, amount: float) -> TextStates:
    """Guidance away from `a` blended with `b` (for --weird: away from the typical)."""
    length = max(a.tokens.shape[1], b.tokens.shape[1])
    both = TextStates.cat([a, b])
    tokens = (1 - amount) * both.tokens[:1] + amount * both.tokens[1:]
    mask = both.mask[:1] | both.mask[1:]
    return TextStates(tokens[:, :length], mask[:, :length])


def _to_array(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    out = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)
    return np.ascontiguousarray(out.cpu().numpy())


def _from_array(image: np.ndarray, h: int, w: int) -> torch.Tensor:
    """An (H, W, 3) uint8 image resized to the base size, as (3, h, w) in [-1, 1]."""
    from PIL import Image

    small = Image.fromarray(image).resize((w, h), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1).float() / 127.5 - 1


def stylize_to_guidance(stylize: int) -> float:
    """--stylize 0..1000 -> guidance 2..~11.5 (100, the default, gives 5)."""
    return 2.0 + 3.0 * math.sqrt(max(stylize, 0) / 100.0)
