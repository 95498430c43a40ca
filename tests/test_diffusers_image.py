"""The diffusers image engine on a tiny random-weight SD pipeline registered from a folder:
the shared engine contract, the prompt language's mapping, every image capability, LoRAs,
and pixels equal to the bare diffusers pipeline's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine_contract import EngineContract
from imagineer.engines.base import Capability, EngineError, GenerationInput, RunControl
from imagineer.engines.diffusers_image import DiffusersImageEngine
from imagineer.engines.diffusers_shared import PromptMapper
from imagineer.models import AddOptions, Catalog, LoraRef, entry_for
from imagineer.models.loading import ModelManager
from imagineer.models.specs import diffusers_spec
from tiny_models import tiny_lora_file, tiny_sd_dir


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    torch.set_num_threads(1)
    catalog = Catalog(tmp_path_factory.mktemp("data"))
    folder = tiny_sd_dir(tmp_path_factory)
    catalog.add(entry_for(str(folder), AddOptions(name="tiny", steps=4)))
    lora = tiny_lora_file(tmp_path_factory)
    catalog.add(entry_for(str(lora), AddOptions(name="noise-lora")))
    with_lora = AddOptions(name="tiny-lora", steps=4, loras=(LoraRef("noise-lora", 1.0),))
    catalog.add(entry_for(str(folder), with_lora))
    return ModelManager(catalog, "cpu")


def engine_for(manager: ModelManager, name: str) -> DiffusersImageEngine:
    engine = diffusers_spec(manager.catalog.get(name), manager).load()
    assert isinstance(engine, DiffusersImageEngine)
    return engine


@pytest.fixture(scope="module")
def tiny(manager: ModelManager) -> DiffusersImageEngine:
    return engine_for(manager, "tiny")


class TestDiffusersImageContract(EngineContract):
    """The shared engine contract on the tiny SD pipeline."""

    size = (64, 64)
    other_size = (80, 56)
    bad_width = 100

    @pytest.fixture
    def engine(self, tiny: DiffusersImageEngine) -> DiffusersImageEngine:
        return tiny


def item(seed: int, **changes: object) -> GenerationInput:
    fields: dict[str, object] = dict(
        capability=Capability.TEXT_TO_IMAGE,
        prompt="a red bird",
        width=64,
        height=64,
        seed=seed,
        steps=2,
    )
    fields.update(changes)
    return GenerationInput(**fields)  # type: ignore[arg-type]


def pixels(engine: DiffusersImageEngine, *items: GenerationInput) -> list[np.ndarray]:
    return [out.image for out in engine.generate(list(items), RunControl())]


def test_same_pixels_as_the_bare_diffusers_pipeline(
    tiny: DiffusersImageEngine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from diffusers import StableDiffusionPipeline

    bare = StableDiffusionPipeline.from_pretrained(
        str(tiny_sd_dir(tmp_path_factory)), local_files_only=True
    )
    bare.set_progress_bar_config(disable=True)
    expected = bare(
        "a red bird",
        negative_prompt="blue",
        height=64,
        width=64,
        num_inference_steps=2,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(11),
        output_type="np",
    ).images[0]
    ours = pixels(tiny, item(11, negative_prompt="blue", guidance=7.5))[0]
    diff = np.abs(ours.astype(int) - (expected * 255).round().astype(int)).max()
    assert diff <= 1


def test_negative_prompt_weights_chaos_and_guidance_change_pixels(
    tiny: DiffusersImageEngine,
) -> None:
    plain = pixels(tiny, item(5))[0]
    variants = {
        "negative": item(5, negative_prompt="night"),
        "weights": item(5, weighted_prompts=(("a red bird", 2.0), ("snow", 1.0))),
        "chaos": item(5, chaos=1.0),
        "guidance": item(5, guidance=2.0),
    }
    for name, changed in variants.items():
        assert not np.array_equal(plain, pixels(tiny, changed)[0]), name


def test_equal_weights_of_one_part_equal_the_plain_prompt(tiny: DiffusersImageEngine) -> None:
    plain = pixels(tiny, item(5))[0]
    weighted = pixels(tiny, item(5, weighted_prompts=(("a red bird", 3.0),)))[0]
    assert np.array_equal(plain, weighted)


def test_image_to_image_inpaint_and_latent_upscale(tiny: DiffusersImageEngine) -> None:
    src = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    i2i = tiny.generate(
        [item(1, capability=Capability.IMAGE_TO_IMAGE, init_image=src, strength=0.5)],
        RunControl(),
    )[0]
    assert i2i.image.shape == (64, 64, 3)
    mask = np.zeros((64, 64), dtype=bool)
    mask[:, 32:] = True
    inpainted = pixels(
        tiny, item(1, capability=Capability.INPAINT, init_image=src, mask=mask, strength=1.0)
    )[0]
    # Outside the mask the picture is kept (up to the VAE round trip); inside it is redrawn.
    kept = np.abs(inpainted[:, :24].astype(int) - src[:, :24]).mean()
    redrawn = np.abs(inpainted[:, 40:].astype(int) - src[:, 40:]).mean()
    assert redrawn > kept
    up = tiny.generate(
        [item(1, capability=Capability.UPSCALE, init_image=src, scale=2, width=128, height=128)],
        RunControl(),
    )[0]
    assert up.image.shape == (128, 128, 3)
    assert dict(up.extras)["upscaler"] == "latent"
    assert up.steps >= tiny.info.default_steps


def test_image_capabilities_need_an_image(tiny: DiffusersImageEngine) -> None:
    with pytest.raises(EngineError, match="needs an input image"):
        tiny.generate([item(1, capability=Capability.IMAGE_TO_IMAGE)], RunControl())
    src = np.zeros((64, 64, 3), dtype=np.uint8)
    with pytest.raises(EngineError, match="needs a mask"):
        tiny.generate([item(1, capability=Capability.INPAINT, init_image=src)], RunControl())


def test_tile_wraps_convolutions_and_restores_them(
    tiny: DiffusersImageEngine, manager: ModelManager
) -> None:
    plain = pixels(tiny, item(4))[0]
    tiled = pixels(tiny, item(4, tile=True))[0].astype(float)
    assert not np.array_equal(plain, tiled)
    # Seamless: the wrap-around seam is no larger than neighbouring columns' differences.
    seam = np.abs(tiled[:, 0] - tiled[:, -1]).mean()
    inner = np.abs(tiled[:, 1:] - tiled[:, :-1]).mean()
    assert seam < 1.5 * inner
    with manager.pipeline(tiny.entry, Capability.TEXT_TO_IMAGE) as (pipe, _):
        modes = {m.padding_mode for m in pipe.unet.modules() if isinstance(m, torch.nn.Conv2d)}
    assert modes == {"zeros"}


def test_a_lora_changes_pixels_and_the_base_stays_clean(manager: ModelManager) -> None:
    base, lora = engine_for(manager, "tiny"), engine_for(manager, "tiny-lora")
    before = pixels(base, item(2))[0]
    with_lora = pixels(lora, item(2))[0]
    after = pixels(base, item(2))[0]
    assert np.abs(before.astype(int) - with_lora).mean() > 1
    assert np.array_equal(before, after)
    assert "LoRA noise-lora at 1" in lora.info.notes
    # One copy of the weights serves both names.
    assert len([k for k in manager.cache.charged() if "tiny-sd" in k]) == 1


def test_text_only_families_refuse_what_they_would_ignore(manager: ModelManager) -> None:
    import dataclasses

    pixart = dataclasses.replace(manager.catalog.get("tiny"), family="pixart", name="px")
    mapper = PromptMapper(pixart)
    args = mapper.arguments(None, [item(1, negative_prompt="fog")])
    assert args == {"prompt": ["a red bird"], "negative_prompt": ["fog"]}
    with pytest.raises(EngineError, match="one text"):
        mapper.arguments(None, [item(1, weighted_prompts=(("a", 2.0), ("b", 1.0)))])
    with pytest.raises(EngineError, match="--chaos"):
        mapper.arguments(None, [item(1, chaos=0.5)])
    flux = dataclasses.replace(pixart, family="flux")
    with pytest.raises(EngineError, match="no negative prompt"):
        PromptMapper(flux).arguments(None, [item(1, negative_prompt="fog")])


def test_changed_files_are_rehashed_and_missing_ones_named(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(tiny_sd_dir(tmp_path_factory), folder)
    catalog = Catalog(tmp_path / "data")
    catalog.add(entry_for(str(folder), AddOptions(name="copy")))
    manager = ModelManager(catalog, "cpu")
    old = catalog.get("copy").content_hash
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace('"steps_offset": 1', '"steps_offset": 0'))
    engine = diffusers_spec(catalog.get("copy"), manager).load()
    assert engine.info.model_hash != old
    assert catalog.get("copy").content_hash == engine.info.model_hash
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    spec = diffusers_spec(catalog.get("copy"), manager)
    why_not = spec.available()
    assert why_not is not None and "unet/diffusion_pytorch_model.safetensors" in why_not
    with pytest.raises(EngineError, match=r"diffusion_pytorch_model\.safetensors"):
        spec.load()
