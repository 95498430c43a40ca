"""Style references (--sref) on the diffusers image engine: a tiny random IP-Adapter and CLIP
image encoder registered offline, loaded into the tiny SD pipeline, scaled by --sw."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from imagineer.engines.base import (
    Capability,
    EngineError,
    GenerationInput,
    RunControl,
    StyleReference,
)
from imagineer.engines.diffusers_image import DiffusersImageEngine
from imagineer.models import AddOptions, Catalog, CatalogError, LoraRef, entry_for
from imagineer.models.loading import ModelManager
from imagineer.models.specs import diffusers_spec
from imagineer.models.tiny import save_tiny_ip_adapter
from tiny_models import tiny_ip_adapter_file, tiny_lora_file, tiny_sd_dir

RNG = np.random.default_rng(0)
REF_A = StyleReference(RNG.integers(0, 255, (48, 40, 3), dtype=np.uint8), "a" * 64)
REF_B = StyleReference(np.full((32, 32, 3), (250, 20, 20), dtype=np.uint8), "b" * 64)


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    torch.set_num_threads(1)
    catalog = Catalog(tmp_path_factory.mktemp("data"))
    folder = tiny_sd_dir(tmp_path_factory)
    catalog.add(entry_for(str(tiny_ip_adapter_file(tmp_path_factory)), AddOptions(name="ip")))
    catalog.add(entry_for(str(folder), AddOptions(name="plain", steps=2)))
    catalog.add(entry_for(str(folder), AddOptions(name="styled", steps=2, ip_adapter="ip")))
    return ModelManager(catalog, "cpu")


def engine(manager: ModelManager, name: str) -> DiffusersImageEngine:
    loaded = diffusers_spec(manager.catalog.get(name), manager).load()
    assert isinstance(loaded, DiffusersImageEngine)
    return loaded


def item(seed: int, *refs: StyleReference, sw: float = 1.0, **changes: object) -> GenerationInput:
    fields: dict[str, object] = dict(
        capability=Capability.TEXT_TO_IMAGE,
        prompt="a red bird",
        width=64,
        height=64,
        seed=seed,
        steps=2,
        guidance=7.5,
        style_refs=refs,
        style_weight=sw,
    )
    fields.update(changes)
    return GenerationInput(**fields)  # type: ignore[arg-type]


def pixels(eng: DiffusersImageEngine, *items: GenerationInput) -> list[np.ndarray]:
    return [out.image for out in eng.generate(list(items), RunControl())]


def test_an_adapter_registers_with_its_image_encoder(manager: ModelManager) -> None:
    adapter = manager.catalog.get("ip")
    assert adapter.is_ip_adapter and not adapter.is_model
    assert adapter.image_encoder is not None and adapter.image_encoder.endswith("image_encoder")
    hashed = {stamp.path for stamp in adapter.files}
    assert {"ip-adapter.safetensors", "image_encoder/config.json"} <= hashed
    assert "ip" not in [e.name for e in manager.catalog.models()]
    styled = engine(manager, "styled")
    assert styled.info.takes_style and not engine(manager, "plain").info.takes_style


def test_the_reference_steers_pixels_and_seeds_stay_exact(manager: ModelManager) -> None:
    styled = engine(manager, "styled")
    before = pixels(styled, item(3))[0]
    with_a = pixels(styled, item(3, REF_A))[0]
    assert np.abs(with_a.astype(int) - before).mean() > 1.0
    assert np.array_equal(with_a, pixels(styled, item(3, REF_A))[0])
    with_b = pixels(styled, item(3, REF_B))[0]
    assert not np.array_equal(with_a, with_b)
    # --sw scales the adapter: more weight, further from the plain image; 0 is no reference.
    strong = pixels(styled, item(3, REF_A, sw=3.0))[0]
    assert np.abs(strong.astype(int) - before).mean() > np.abs(with_a.astype(int) - before).mean()
    assert np.array_equal(pixels(styled, item(3, REF_A, sw=0.0))[0], before)
    # Once the UNet holds the adapter, plain calls still give the pixels of a model without it.
    assert np.array_equal(pixels(styled, item(3))[0], before)
    assert np.array_equal(pixels(engine(manager, "plain"), item(3))[0], before)


def test_references_blend_by_weight_and_batch_like_single_items(manager: ModelManager) -> None:
    styled = engine(manager, "styled")
    heavy_a = StyleReference(REF_A.image, REF_A.digest, weight=9.0)
    blend = pixels(styled, item(4, heavy_a, REF_B))[0]
    only_a, only_b = pixels(styled, item(4, REF_A))[0], pixels(styled, item(4, REF_B))[0]
    assert np.abs(blend.astype(int) - only_a).mean() < np.abs(blend.astype(int) - only_b).mean()
    # diffusers repeats one image embedding over a call: items with other references run apart.
    batch = (item(5, REF_A), item(6, REF_B), item(7), item(8, REF_A))
    together = pixels(styled, *batch)
    alone = [pixels(styled, it)[0] for it in batch]
    for a, b in zip(together, alone, strict=True):
        assert np.abs(a.astype(int) - b).max() <= 1


def test_the_recipe_extras_name_the_adapter(manager: ModelManager) -> None:
    out = engine(manager, "styled").generate([item(1, REF_A, sw=2.0)], RunControl())[0]
    extras = dict(out.extras)
    assert extras["ip_adapter"] == "ip" and extras["ip_adapter_scale"] == pytest.approx(1.2)


def test_a_model_without_an_adapter_says_what_to_register(manager: ModelManager) -> None:
    with pytest.raises(EngineError, match=r"--ip-adapter NAME") as err:
        pixels(engine(manager, "plain"), item(1, REF_A))
    assert "imagineer models add IP-ADAPTER.safetensors --image-encoder DIR" in str(err.value)


def test_registry_errors_name_the_fix(
    manager: ModelManager, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    alone = tmp_path / "ip-adapter.safetensors"
    shutil.copy(tiny_ip_adapter_file(tmp_path_factory), alone)
    with pytest.raises(CatalogError, match="needs its CLIP image encoder"):
        entry_for(str(alone), AddOptions())
    encoder = tiny_ip_adapter_file(tmp_path_factory).parent / "image_encoder"
    moved = entry_for(str(alone), AddOptions(name="moved", image_encoder=encoder))
    assert any(stamp.path.startswith("../") for stamp in moved.files)  # hashed where it lies
    folder = str(tiny_sd_dir(tmp_path_factory))
    catalog = manager.catalog
    with pytest.raises(CatalogError, match="no registered IP-Adapter"):
        catalog.add(entry_for(folder, AddOptions(name="x", ip_adapter="nope")))
    catalog.add(entry_for(str(tiny_lora_file(tmp_path_factory)), AddOptions(name="grain")))
    with pytest.raises(CatalogError, match="not a registered IP-Adapter"):
        catalog.add(entry_for(folder, AddOptions(name="x", ip_adapter="grain")))
    with pytest.raises(CatalogError, match="IP-Adapter 'ip' is used by styled"):
        catalog.remove("ip")
    assert LoraRef("grain").weight == 1.0


def test_two_entries_of_one_folder_each_get_their_own_adapter(
    manager: ModelManager, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tiny_sd_dir(tmp_path_factory)
    other = save_tiny_ip_adapter(tmp_path / "other-ip", folder, seed=1)
    catalog = manager.catalog
    catalog.add(entry_for(str(other), AddOptions(name="ip2")))
    catalog.add(entry_for(str(folder), AddOptions(name="styled2", steps=2, ip_adapter="ip2")))
    first = pixels(engine(manager, "styled"), item(2, REF_A))[0]
    second = pixels(engine(manager, "styled2"), item(2, REF_A))[0]  # same weights in memory
    assert not np.array_equal(first, second)
    assert np.array_equal(pixels(engine(manager, "styled"), item(2, REF_A))[0], first)
