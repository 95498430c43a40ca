"""The model registry: entries read from a diffusers folder, a LoRA file and a Hugging Face cache
snapshot, offline; hashes, licences, defaults; the JSON store; and clear errors for bad sources."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from imagineer.models import AddOptions, Catalog, CatalogError, LoraRef, entry_for
from imagineer.models.families import FAMILIES, family, family_of_pipeline
from imagineer.models.sources import changed_files, hash_files, rehash
from tiny_models import tiny_lora_file, tiny_sd_dir


@pytest.fixture(scope="module")
def sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sd_dir(tmp_path_factory)


def test_a_folder_entry_records_family_defaults_licence_and_hash(sd: Path) -> None:
    entry = entry_for(str(sd), AddOptions())
    assert entry.name == "tiny-sd" and entry.source == "folder" and entry.path == str(sd)
    assert (entry.family, entry.pipeline) == ("sd15", "StableDiffusionPipeline")
    assert set(entry.capabilities) == {"text-to-image", "image-to-image", "inpaint", "upscale"}
    assert entry.base_side == 64  # from the UNet's sample_size and the VAE's scale
    assert (entry.default_steps, entry.default_guidance) == (30, 7.5)
    assert entry.licence == "mit" and "MIT licence" in entry.licence_text
    files = {f.path for f in entry.files}
    assert "unet/diffusion_pytorch_model.safetensors" in files
    assert "tokenizer/tokenizer.json" in files and "model_index.json" in files
    assert "README.md" not in files  # documentation does not change pixels
    again = entry_for(str(sd), AddOptions(name="other", steps=4, guidance=3.0, base_side=128))
    assert again.content_hash == entry.content_hash
    assert (again.default_steps, again.default_guidance, again.base_side) == (4, 3.0, 128)


def test_the_hash_covers_names_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"12")
    (tmp_path / "b").write_bytes(b"3")
    first, stamps = hash_files(tmp_path, [tmp_path / "b", tmp_path / "a"])
    assert [s.path for s in stamps] == ["a", "b"]  # name order, whatever the call's order
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"23")
    assert hash_files(tmp_path, [tmp_path / "a", tmp_path / "b"])[0] != first


def test_changes_on_disk_are_found_and_rehashed(sd: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(sd, tmp_path / "copy")
    entry = entry_for(str(folder), AddOptions())
    assert changed_files(entry) == []
    config = folder / "vae" / "config.json"
    config.write_text(config.read_text() + " ")
    assert changed_files(entry) == ["vae/config.json"]
    assert rehash(entry).content_hash != entry.content_hash
    (folder / "vae" / "config.json").unlink()
    assert changed_files(entry) == ["vae/config.json (missing)"]
    with pytest.raises(CatalogError, match=r"missing vae/config\.json"):
        rehash(entry)


def test_catalog_stores_json_and_refuses_duplicates(sd: Path, tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "data")
    entry = entry_for(str(sd), AddOptions(name="tiny"))
    catalog.add(entry)
    with pytest.raises(CatalogError, match="already registered"):
        catalog.add(entry)
    catalog.add(entry, replace_existing=True)
    stored = json.loads((tmp_path / "data" / "models.json").read_text())
    assert stored["version"] == 1 and [m["name"] for m in stored["models"]] == ["tiny"]
    assert Catalog(tmp_path / "data").get("tiny") == entry  # reads back equal
    with pytest.raises(CatalogError, match=r"no registered model 'nope' \(registered: tiny\)"):
        catalog.get("nope")
    assert catalog.remove("tiny") == entry and catalog.entries() == []


def test_concurrent_adds_all_land(sd: Path, tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "data")
    entry = entry_for(str(sd), AddOptions(name="m0"))
    import dataclasses

    def add(i: int) -> None:
        Catalog(tmp_path / "data").add(dataclasses.replace(entry, name=f"m{i}"))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e.name for e in catalog.entries()) == sorted(f"m{i}" for i in range(8))


def test_loras_register_and_guard_their_users(
    sd: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    catalog = Catalog(tmp_path / "data")
    lora = entry_for(str(tiny_lora_file(tmp_path_factory)), AddOptions(name="grain"))
    assert lora.is_lora and lora.capabilities == () and len(lora.content_hash) == 64
    with pytest.raises(CatalogError, match="--lora grain: no registered LoRA"):
        catalog.add(entry_for(str(sd), AddOptions(name="m", loras=(LoraRef("grain", 0.5),))))
    catalog.add(lora)
    catalog.add(entry_for(str(sd), AddOptions(name="m", loras=(LoraRef("grain", 0.5),))))
    with pytest.raises(CatalogError, match="used by m"):
        catalog.remove("grain")


def test_a_hugging_face_cache_snapshot_is_found_offline(sd: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--tiny-org--tiny-sd" / "snapshots" / commit
    shutil.copytree(sd, snapshot)
    refs = cache / "models--tiny-org--tiny-sd" / "refs"
    refs.mkdir()
    (refs / "main").write_text(commit)
    entry = entry_for("hf:tiny-org/tiny-sd", AddOptions(hf_cache=cache))
    assert (entry.source, entry.repo_id, entry.revision) == ("hf-cache", "tiny-org/tiny-sd", commit)
    assert entry.name == "tiny-sd" and entry.family == "sd15"
    assert entry.content_hash == entry_for(str(sd), AddOptions()).content_hash
    with pytest.raises(CatalogError, match="never downloads"):
        entry_for("hf:tiny-org/absent", AddOptions(hf_cache=cache))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such file or folder"),
        (lambda p: _mkdir(p / "empty"), "missing model_index.json"),
        (lambda p: _write(p / "unet" / "config.json", '{"_class_name": "UNet2DConditionModel"}'),
         "single UNet2DConditionModel"),
        (lambda p: _write(p / "notes.txt", "hello"), "expected a diffusers folder or a checkpoint"),
        (lambda p: _write(p / "broken.safetensors", "not a checkpoint"), "cannot be read"),
    ],
)  # fmt: skip
def test_bad_sources_get_clear_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(CatalogError, match=message):
        entry_for(str(path), AddOptions())


def test_a_missing_component_folder_is_named(sd: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(sd, tmp_path / "copy")
    shutil.rmtree(folder / "vae")
    with pytest.raises(CatalogError, match=r"component 'vae' .* missing"):
        entry_for(str(folder), AddOptions())


def test_names_families_and_options_are_checked(sd: Path) -> None:
    with pytest.raises(CatalogError, match="model name 'a b'"):
        entry_for(str(sd), AddOptions(name="a b"))
    with pytest.raises(CatalogError, match="reserved"):
        entry_for(str(sd), AddOptions(name="embedded"))
    with pytest.raises(CatalogError, match="belongs to sd15"):
        entry_for(str(sd), AddOptions(family="sdxl"))
    with pytest.raises(ValueError, match="unknown model family 'sd9'"):
        entry_for(str(sd), AddOptions(family="sd9"))
    with pytest.raises(CatalogError, match="multiple of 8"):
        entry_for(str(sd), AddOptions(base_side=100))


def test_every_family_is_consistent() -> None:
    names = [f.name for f in FAMILIES]
    assert len(names) == len(set(names))
    for fam in FAMILIES:
        assert fam.kind in ("image", "video") and fam.capabilities
        assert fam.base_side % fam.size_multiple == 0
        for pipeline in fam.pipelines:
            assert family_of_pipeline(pipeline) is fam
        if fam.kind == "video":
            step, offset = fam.frames_rule
            assert (fam.frames - offset) % step == 0
    assert family("flux").negative_prompt is False
    with pytest.raises(ValueError, match="does not know the diffusers pipeline 'Nope'"):
        family_of_pipeline("Nope")


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path.parent if path.name == "config.json" else path
