"""The byte-counted model cache: least recently used models are evicted until a new one fits,
per memory, under the free memory reported and the operator's limit; placement falls back to
offloading and VAE tiling/slicing when memory is short."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imagineer.engines.base import Capability
from imagineer.models import AddOptions, Catalog, entry_for
from imagineer.models.cache import Loaded, ModelCache, choose_placement, module_bytes
from imagineer.models.loading import ModelManager, dtype_for, estimate_bytes
from tiny_models import tiny_sd_dir

MB = 1 << 20
GB = 1 << 30


class Plenty:
    """A machine with more free memory than any test asks for."""

    def free_bytes(self, memory: str) -> int:
        return 64 * GB


def blob(nbytes: int) -> torch.nn.Module:
    module = torch.nn.Module()
    module.register_buffer("data", torch.zeros(nbytes, dtype=torch.uint8))
    return module


def test_evicts_least_recently_used_until_the_new_model_fits() -> None:
    cache = ModelCache(Plenty(), limits={"cpu": 10 * MB})
    loads: list[str] = []

    def loader(key: str, size: int):  # type: ignore[no-untyped-def]
        def load(free: int) -> Loaded:
            assert free >= size  # room was made before loading
            loads.append(key)
            return Loaded.of(blob(size), "cpu")

        return load

    cache.get_or_load("a", "cpu", 4 * MB, loader("a", 4 * MB))
    cache.get_or_load("b", "cpu", 4 * MB, loader("b", 4 * MB))
    cache.get_or_load("a", "cpu", 4 * MB, loader("a", 4 * MB))  # a hit: a is now most recent
    assert loads == ["a", "b"] and cache.used("cpu") == 8 * MB
    cache.get_or_load("c", "cpu", 4 * MB, loader("c", 4 * MB))  # b is least recent: it goes
    assert cache.lru_order() == ["a", "c"] and cache.evictions == ["b"]
    cache.get_or_load("d", "cpu", 9 * MB, loader("d", 9 * MB))  # needs both gone
    assert cache.lru_order() == ["d"] and cache.evictions == ["b", "a", "c"]
    assert cache.charged() == {"d": ("cpu", 9 * MB)}


def test_memories_are_counted_apart() -> None:
    cache = ModelCache(Plenty(), limits={"cpu": 5 * MB, "cuda:0": 5 * MB})
    cache.get_or_load("gpu-model", "cuda:0", 4 * MB, lambda _f: Loaded.of(blob(4 * MB), "cuda:0"))
    cache.get_or_load("cpu-model", "cpu", 4 * MB, lambda _f: Loaded.of(blob(4 * MB), "cpu"))
    assert cache.lru_order() == ["gpu-model", "cpu-model"]  # neither pushed the other out
    cache.get_or_load("cpu-2", "cpu", 4 * MB, lambda _f: Loaded.of(blob(4 * MB), "cpu"))
    assert cache.lru_order() == ["gpu-model", "cpu-2"]


def test_a_model_in_use_is_not_evicted_under_its_user() -> None:
    cache = ModelCache(Plenty(), limits={"cpu": 5 * MB})
    value, lock = cache.get_or_load("a", "cpu", 4 * MB, lambda _f: Loaded.of(blob(4 * MB), "cpu"))
    with lock:
        assert isinstance(value, torch.nn.Module)
    cache.get_or_load("b", "cpu", 4 * MB, lambda _f: Loaded.of(blob(4 * MB), "cpu"))
    assert cache.lru_order() == ["b"]


def test_placement_offloads_and_tiles_when_memory_is_short() -> None:
    fp16 = torch.float16
    full = choose_placement("cuda:0", fp16, 10 * GB, 5 * GB, free=20 * GB)
    assert (full.offload, full.vae_tiling, full.vae_slicing) == ("none", False, False)
    assert full.charged_to == "cuda:0"
    model = choose_placement("cuda:0", fp16, 10 * GB, 5 * GB, free=8 * GB)
    assert (model.offload, model.vae_slicing, model.charged_to) == ("model", True, "cpu")
    sequential = choose_placement("cuda:0", fp16, 10 * GB, 9 * GB, free=4 * GB)
    assert (sequential.offload, sequential.vae_tiling) == ("sequential", True)
    cpu_short = choose_placement("cpu", torch.float32, 10 * GB, 5 * GB, free=8 * GB)
    assert (cpu_short.offload, cpu_short.vae_tiling, cpu_short.vae_slicing) == ("none", True, True)


def test_estimates_dtypes_and_a_real_pipeline_in_the_cache(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    catalog = Catalog(tmp_path)
    entry = entry_for(str(tiny_sd_dir(tmp_path_factory)), AddOptions(name="tiny"))
    catalog.add(entry)
    assert dtype_for(entry, "cpu") is torch.float32
    weights = sum(f.size for f in entry.files if f.path.endswith(".safetensors"))
    assert estimate_bytes(entry, "cpu") == weights
    manager = ModelManager(catalog, "cpu", ModelCache(Plenty(), limits={"cpu": 64 * MB}))
    with manager.pipeline(entry, Capability.TEXT_TO_IMAGE) as (pipe, placement):
        loaded = module_bytes(pipe)
        assert placement.offload == "none" and placement.dtype is torch.float32
    ((memory, counted),) = manager.cache.charged().values()
    assert memory == "cpu" and counted == loaded
    # The weights on disk are the float32 tensors in memory, give or take file headers.
    assert abs(counted - weights) < 0.01 * weights
    with manager.pipeline(entry, Capability.IMAGE_TO_IMAGE) as (pipe2, _):
        assert type(pipe2).__name__ == "StableDiffusionImg2ImgPipeline"
        assert module_bytes(pipe2) == loaded  # derived with from_pipe: the same tensors
    assert len(manager.cache.lru_order()) == 1


def test_real_pipelines_evict_each_other_under_a_limit(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import shutil

    first = tiny_sd_dir(tmp_path_factory)
    second = shutil.copytree(first, tmp_path / "second")
    catalog = Catalog(tmp_path / "data")
    a = entry_for(str(first), AddOptions(name="a"))
    b = entry_for(str(second), AddOptions(name="b"))
    one_model = estimate_bytes(a, "cpu")
    cache = ModelCache(Plenty(), limits={"cpu": one_model * 3 // 2})
    manager = ModelManager(catalog, "cpu", cache)
    with manager.pipeline(a, Capability.TEXT_TO_IMAGE):
        pass
    with manager.pipeline(b, Capability.TEXT_TO_IMAGE):
        pass
    assert [k.split("#")[0] for k in cache.lru_order()] == [str(second)]
    assert cache.evictions[0].startswith(str(first))
    assert cache.used("cpu") <= one_model * 3 // 2


def test_an_ip_adapter_is_charged_to_the_model_it_loads_into(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Its image encoder and the attention layers it adds to the UNet count in the cache, and
    making room for them evicts other models, never the one it loads into."""
    import shutil

    from safetensors.torch import load_file

    from tiny_models import tiny_ip_adapter_file

    adapter_file = tiny_ip_adapter_file(tmp_path_factory)
    other = shutil.copytree(tiny_sd_dir(tmp_path_factory), tmp_path / "other")
    catalog = Catalog(tmp_path / "data")
    catalog.add(entry_for(str(adapter_file), AddOptions(name="ip")))
    styled = entry_for(str(tiny_sd_dir(tmp_path_factory)), AddOptions(name="s", ip_adapter="ip"))
    plain = entry_for(str(other), AddOptions(name="plain"))
    one_model = estimate_bytes(plain, "cpu")
    adapter_on_disk = sum(f.size for f in catalog.get("ip").files if f.path.endswith("tensors"))
    cache = ModelCache(Plenty(), limits={"cpu": 2 * one_model + adapter_on_disk // 2})
    manager = ModelManager(catalog, "cpu", cache)
    with manager.pipeline(plain, Capability.TEXT_TO_IMAGE):
        pass
    with manager.held(styled, Capability.TEXT_TO_IMAGE) as held:  # no style call: no adapter
        assert held.adapter is None
    key = cache.lru_order()[-1]
    before = cache.charged()[key][1]
    with manager.held(styled, Capability.TEXT_TO_IMAGE, style=True) as held:
        assert held.adapter is not None and held.adapter.state == {}  # the UNet holds it now
        encoder = module_bytes(held.adapter.encoder)
    layers = sum(t.numel() * t.element_size() for t in load_file(str(adapter_file)).values())
    assert cache.charged() == {key: ("cpu", before + encoder + layers)}
    assert cache.evictions == [f"{plain.path}#{plain.content_hash[:16]}"]
    with manager.held(styled, Capability.IMAGE_TO_IMAGE, style=True):  # the same UNet
        pass
    assert cache.charged()[key][1] == before + encoder + layers
    alone = ModelCache(Plenty(), limits={"cpu": one_model + adapter_on_disk // 2})
    with ModelManager(catalog, "cpu", alone).held(styled, Capability.TEXT_TO_IMAGE, style=True):
        pass
    assert alone.evictions == [] and alone.charged()[key][1] == before + encoder + layers
