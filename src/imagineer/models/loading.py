"""Loading registered models as diffusers pipelines, offline, placed to fit the memory free.

A registered model loads once into the shared ModelCache; each capability's pipeline
(text-to-image, image-to-image, inpaint, video) is derived from it with `from_pipe`, sharing
the weights. LoRAs are loaded into the pipeline once and switched per call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from imagineer.engines.base import Capability, EngineError
from imagineer.models.adapters import LoadedAdapter, load_adapter, put_in_unet, take_out_of_unet
from imagineer.models.cache import (
    Loaded,
    ModelCache,
    Placement,
    choose_placement,
    largest_module_bytes,
    memory_of,
    module_bytes,
)
from imagineer.models.catalog import Catalog, ModelEntry
from imagineer.models.families import family
from imagineer.models.sources import changed_files, rehash

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def dtype_for(entry: ModelEntry, device: str) -> torch.dtype:
    """float32 on CPU; the family's half precision on CUDA (bfloat16 only where supported)."""
    if not device.startswith("cuda"):
        return torch.float32
    wanted = DTYPES[family(entry.family).cuda_dtype]
    if wanted is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return torch.float16
    return wanted


def why_not_loadable(entry: ModelEntry) -> str | None:
    """None when the entry's files are all there, else what is missing (cheap: stat only)."""
    root = Path(entry.path)
    if not root.exists():
        return f"{root} is gone: restore it or `imagineer models remove {entry.name}`"
    missing = [c for c in changed_files(entry) if c.endswith("(missing)")]
    if missing:
        return f"missing {', '.join(missing)} under {root}"
    if entry.config is not None and not Path(entry.config).is_dir():
        return f"its config folder {entry.config} is gone"
    return None


@dataclass
class LoadedModel:
    """One registered model in memory: its base pipeline and the task pipelines made from it."""

    base: Any
    placement: Placement
    tasks: dict[Capability, Any] = field(default_factory=dict)
    loras_loaded: set[str] = field(default_factory=set)
    adapter: LoadedAdapter | None = None  # the IP-Adapter, once a style call needed it


@dataclass(frozen=True)
class Held:
    """A pipeline held for one call, and the model's IP-Adapter when one is in memory."""

    pipe: Any
    placement: Placement
    adapter: LoadedAdapter | None


class ModelManager:
    """Registered models on one device, loaded on demand into a shared byte-counted cache."""

    def __init__(self, catalog: Catalog, device: str, cache: ModelCache | None = None) -> None:
        self.catalog = catalog
        self.device = device
        self.cache = cache or ModelCache()
        self._lock = threading.Lock()

    def verified(self, entry: ModelEntry) -> ModelEntry:
        """`entry` with a hash that matches the files on disk now (re-hashed if they changed)."""
        why_not = why_not_loadable(entry)
        if why_not is not None:
            raise EngineError(f"model {entry.name!r} cannot load: {why_not}")
        if changed_files(entry):
            entry = rehash(entry)
            self.catalog.update(entry)
        return entry

    @contextlib.contextmanager
    def pipeline(
        self, entry: ModelEntry, capability: Capability
    ) -> Iterator[tuple[Any, Placement]]:
        """The pipeline for `capability`, held for the caller's use (no eviction meanwhile),
        with the entry's LoRAs switched on at their weights."""
        with self.held(entry, capability) as held:
            yield held.pipe, held.placement

    @contextlib.contextmanager
    def held(
        self, entry: ModelEntry, capability: Capability, *, style: bool = False
    ) -> Iterator[Held]:
        """As `pipeline`; with `style`, the entry's IP-Adapter is loaded into the UNet first."""
        key = f"{entry.path}#{entry.content_hash[:16]}"
        estimate = estimate_bytes(entry, self.device)
        memory = memory_of(self.device)
        loaded, lock = self.cache.get_or_load(
            key, memory, estimate, lambda free: self._load(entry, free)
        )
        with lock:
            pipe = loaded.tasks.get(capability)
            if pipe is None:
                pipe = task_pipeline(loaded.base, entry, capability)
                loaded.tasks[capability] = pipe
            self._set_loras(loaded, entry, pipe)
            if style:
                self._set_adapter(key, loaded, entry, pipe)
            adapter = (
                loaded.adapter if loaded.adapter is not None and loaded.adapter.in_unet else None
            )
            yield Held(pipe, loaded.placement, adapter)

    def _load(self, entry: ModelEntry, free: int) -> Loaded:
        dtype = dtype_for(entry, self.device)
        base = load_base(entry, dtype)
        placement = choose_placement(
            self.device, dtype, module_bytes(base), largest_module_bytes(base), free
        )
        place(base, placement)
        return Loaded(LoadedModel(base, placement), placement.charged_to, module_bytes(base))

    def _set_adapter(self, key: str, loaded: LoadedModel, entry: ModelEntry, pipe: Any) -> None:
        """Load the entry's IP-Adapter into the cached model `key`, charging the cache for it:
        its image encoder and the attention layers it adds to the UNet."""
        if entry.ip_adapter is None:
            raise EngineError(
                f"--sref needs an IP-Adapter on model {entry.name!r}: register one with "
                "`imagineer models add IP-ADAPTER.safetensors --image-encoder DIR`, then attach "
                f"it with `imagineer models add MODEL --name {entry.name} --ip-adapter NAME "
                "--replace`"
            )
        current = loaded.adapter
        if current is not None and current.name == entry.ip_adapter and current.in_unet:
            return
        if current is not None and current.name != entry.ip_adapter:
            take_out_of_unet(pipe, current)  # another entry of these weights had its own
            loaded.adapter = None
        placement = loaded.placement
        if loaded.adapter is None:
            adapter = self.verified(self.catalog.get(entry.ip_adapter))
            device = placement.device if placement.offload == "none" else "cpu"
            self.cache.make_room(placement.charged_to, adapter_estimate(adapter), keep=key)
            loaded.adapter = load_adapter(adapter, placement.dtype, device)
        put_in_unet(pipe, loaded.adapter)
        self.cache.recharge(key, module_bytes(loaded.base, loaded.adapter.encoder))

    def _set_loras(self, loaded: LoadedModel, entry: ModelEntry, pipe: Any) -> None:
        if not entry.loras and not loaded.loras_loaded:
            return
        for ref in entry.loras:
            if ref.name not in loaded.loras_loaded:
                lora = self.catalog.get(ref.name)
                try:
                    loaded.base.load_lora_weights(lora.path, adapter_name=ref.name)
                except (ValueError, KeyError, RuntimeError) as err:
                    raise EngineError(
                        f"LoRA {ref.name!r} does not fit model {entry.name!r} "
                        f"(family {entry.family}): {err}"
                    ) from None
                loaded.loras_loaded.add(ref.name)
        if entry.loras:
            pipe.enable_lora()
            pipe.set_adapters([r.name for r in entry.loras], [r.weight for r in entry.loras])
        else:
            pipe.disable_lora()


def estimate_bytes(entry: ModelEntry, device: str) -> int:
    """Bytes the weights will take: their size on disk, scaled to the dtype they load in."""
    on_disk = sum(f.size for f in entry.files if not f.path.endswith(CONFIG_ENDINGS))
    stored = 2 if entry.variant in ("fp16", "bf16") else 4
    loaded = torch.finfo(dtype_for(entry, device)).bits // 8
    return on_disk * loaded // stored


CONFIG_ENDINGS = (".json", ".txt", ".model")


def adapter_estimate(adapter: ModelEntry) -> int:
    """Bytes an IP-Adapter and its image encoder will add: their weights' size on disk (what
    they add once loaded is measured and charged after)."""
    return sum(f.size for f in adapter.files if not f.path.endswith(CONFIG_ENDINGS))


def load_base(entry: ModelEntry, dtype: torch.dtype) -> Any:
    """The entry's own pipeline class, from local files only; EngineError naming what is missing."""
    import diffusers

    cls = getattr(diffusers, entry.pipeline, None)
    if cls is None:
        raise EngineError(
            f"model {entry.name!r} needs diffusers' {entry.pipeline}, which this diffusers "
            f"({diffusers.__version__}) does not have: upgrade diffusers"
        )
    try:
        if entry.source == "single-file":
            pipe = cls.from_single_file(
                entry.path, config=entry.config, dtype=dtype, local_files_only=True
            )
        else:
            pipe = cls.from_pretrained(
                entry.path, dtype=dtype, local_files_only=True, variant=entry.variant
            )
    except (OSError, ValueError) as err:
        raise EngineError(f"model {entry.name!r} failed to load from {entry.path}: {err}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


def place(pipe: Any, placement: Placement) -> None:
    """Move the pipeline to its device, or set up offloading, and switch VAE memory savers."""
    if placement.offload == "model":
        pipe.enable_model_cpu_offload(device=placement.device)
    elif placement.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=placement.device)
    else:
        pipe.to(placement.device)
    vae = getattr(pipe, "vae", None)
    if vae is None:
        return
    if placement.vae_slicing and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()
    if placement.vae_tiling and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()


def task_pipeline(base: Any, entry: ModelEntry, capability: Capability) -> Any:
    """The pipeline that does `capability` with the base pipeline's weights (shared)."""
    from diffusers import (
        AutoPipelineForImage2Image,
        AutoPipelineForInpainting,
        AutoPipelineForText2Image,
    )

    fam = family(entry.family)
    if capability not in fam.capabilities:
        raise EngineError(f"model {entry.name!r} ({fam.name}) cannot do {capability.value}")
    if fam.kind == "video" or fam.name == "sd-x4-upscaler":
        return _video_task(base, capability)
    auto = {
        Capability.TEXT_TO_IMAGE: AutoPipelineForText2Image,
        Capability.IMAGE_TO_IMAGE: AutoPipelineForImage2Image,
        Capability.UPSCALE: AutoPipelineForImage2Image,  # latent upscale: img2img at the new size
        Capability.INPAINT: AutoPipelineForInpainting,
    }[capability]
    try:
        pipe = auto.from_pipe(base)
    except ValueError as err:
        raise EngineError(f"model {entry.name!r} cannot do {capability.value}: {err}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _video_task(base: Any, capability: Capability) -> Any:
    """Video families: the base pipeline, or its image-to-video sibling (LTX)."""
    from diffusers.pipelines.auto_pipeline import (
        AUTO_IMAGE2VIDEO_PIPELINES_MAPPING,
        _get_task_class,
    )

    name = type(base).__name__
    if capability is Capability.IMAGE_TO_VIDEO and "ImageToVideo" not in name:
        if "StableVideoDiffusion" in name:
            return base
        cls = _get_task_class(AUTO_IMAGE2VIDEO_PIPELINES_MAPPING, name, False)
        if cls is None:
            raise EngineError(f"{name} has no image-to-video form")
        pipe = cls.from_pipe(base)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    return base
