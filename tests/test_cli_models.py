"""`imagineer models add|list|show|remove` and `imagine --model NAME` end to end, offline, on
a tiny random-weight diffusers folder, through the real runtime, router, engines and marks;
an IP-Adapter for --sref, and a single-file checkpoint written from the folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from imagineer.cli import app
from imagineer.media.images import read_recipe
from imagineer.prompts import size_for_aspect
from imagineer.provenance.recipe import content_hash
from tiny_models import tiny_ip_adapter_file, tiny_lora_file, tiny_sd_dir, tiny_single_file


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run `imagineer --data-dir TMP …` with the real runtime; returns (stdout, stderr, code)."""
    for name in ("DATABASE_URL", "OUTPUT_DIR", "DEFAULT_MODEL", "POLICY_FILE", "SIGN"):
        monkeypatch.delenv(f"IMAGINEER_{name}", raising=False)
    monkeypatch.setenv("IMAGINEER_DEVICE", "cpu")
    monkeypatch.setenv("IMAGINEER_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = CliRunner()

    def run(*args: str) -> tuple[str, str, int]:
        result = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), *args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.stdout, result.stderr, result.exit_code

    return run


def test_add_a_folder_then_imagine_with_it(
    cli, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:  # type: ignore[no-untyped-def]
    folder = tiny_sd_dir(tmp_path_factory)
    out, err, code = cli("models", "add", str(folder), "--name", "tiny", "--steps", "2")
    assert code == 0, err
    assert "added sd15 model 'tiny'" in out and "--model tiny" in out

    out, err, code = cli(
        "imagine", "a red bird over the sea --model tiny --seed 3 --ar 3:2 --no fog",
        "--out", str(tmp_path / "o"), "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert [i["recipe"]["seed"] for i in result["images"]] == [3, 4, 5, 6]
    assert result["engine"] == "tiny"
    shown = json.loads(cli("models", "show", "tiny", "--json")[0])
    width, height = size_for_aspect((3, 2), area=64 * 64, multiple=8)
    for image in result["images"]:
        recipe = read_recipe(Path(image["path"]))
        assert recipe is not None and image["signed"]  # (too small to watermark)
        assert (recipe.engine, recipe.width, recipe.height) == ("tiny", width, height)
        assert recipe.model_hash == shown["registry"]["content_hash"]
        assert recipe.negative_prompt == "fog" and recipe.steps == 2
        assert recipe.extras["route"] == "--model tiny"
    assert shown["registry"]["licence"] == "mit" and shown["family"] == "sd15"


def test_list_show_remove_and_errors(
    cli, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:  # type: ignore[no-untyped-def]
    folder = tiny_sd_dir(tmp_path_factory)
    assert cli("models", "add", str(folder), "--name", "tiny")[2] == 0
    _, err, code = cli("models", "add", str(folder), "--name", "tiny")
    assert code == 1 and "already registered" in err and "--replace" in err
    lora = tiny_lora_file(tmp_path_factory)
    assert cli("models", "add", str(lora), "--name", "grain")[2] == 0
    _, err, code = cli("models", "add", str(folder), "--name", "tiny-grain", "--lora", "grain:0.5")
    assert code == 0, err
    listing = json.loads(cli("models", "list", "--json")[0])
    names = {m["name"]: m["family"] for m in listing}
    assert names["tiny"] == "sd15" and names["tiny-grain"] == "sd15" and names["grain"] == "lora"
    _, err, code = cli("models", "remove", "grain")
    assert code == 1 and "used by tiny-grain" in err
    assert cli("models", "remove", "tiny-grain")[2] == 0
    assert cli("models", "remove", "grain")[2] == 0
    _, err, code = cli("models", "add", str(tmp_path / "nowhere"))
    assert code == 1 and "no such file or folder" in err
    _, err, code = cli("models", "add", "some-org/some-model")
    assert code == 1 and "hf:some-org/some-model" in err
    _, err, code = cli("models", "add", "hf:some-org/some-model", "--hf-cache", str(tmp_path))
    assert code == 1 and "not in" in err and "never downloads" in err
    _, err, code = cli(
        "imagine", "a bird --model tiyn", "--out", str(tmp_path / "o")
    )  # a typo is an error, not a silent switch to another model
    assert code == 1 and "did you mean 'tiny'" in err


def images(out: str) -> list[Path]:
    return [Path(image["path"]) for image in json.loads(out)["images"]]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_an_ip_adapter_makes_sref_work_on_a_diffusers_model(
    cli, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:  # type: ignore[no-untyped-def]
    folder = tiny_sd_dir(tmp_path_factory)
    adapter = tiny_ip_adapter_file(tmp_path_factory)
    out, err, code = cli("models", "add", str(adapter), "--name", "ip")
    assert code == 0, err
    assert "added IP-Adapter" in out and "--ip-adapter ip" in out
    assert cli("models", "add", str(folder), "--name", "tiny", "--steps", "2")[2] == 0
    ref = tmp_path / "ref.png"
    Image.fromarray(np.full((40, 40, 3), (240, 30, 30), np.uint8)).save(ref)
    prompt = f"a red bird --model tiny --seed 3 --sref {ref} --sw 300"
    _, err, code = cli("imagine", prompt, "--out", str(tmp_path / "no"))
    assert code != 0 and "--ip-adapter NAME" in err
    out, err, code = cli("models", "add", str(folder), "--name", "tiny", "--steps", "2",
                         "--ip-adapter", "ip", "--replace")  # fmt: skip
    assert code == 0, err
    listing = json.loads(cli("models", "list", "--json")[0])
    assert {"name": "ip", "family": "ip-adapter", "path": str(adapter)} in listing
    out, err, code = cli("imagine", prompt, "--out", str(tmp_path / "styled"), "--json")
    assert code == 0, err
    plain, err, code = cli("imagine", "a red bird --model tiny --seed 3", "--out",
                           str(tmp_path / "plain"), "--json")  # fmt: skip
    assert code == 0, err
    for styled_path, plain_path in zip(images(out), images(plain), strict=True):
        recipe = read_recipe(styled_path)
        assert recipe is not None
        assert recipe.extras["sref"] == content_hash(ref.read_bytes())
        assert recipe.extras["ip_adapter"] == "ip"
        assert recipe.extras["ip_adapter_scale"] == pytest.approx(1.8)
        assert not np.array_equal(pixels(styled_path), pixels(plain_path))
    _, err, code = cli("models", "remove", "ip")
    assert code == 1 and "used by tiny" in err


def test_a_single_file_checkpoint_renders_like_its_folder(
    cli,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    folder = tiny_sd_dir(tmp_path_factory)
    single = tiny_single_file(tmp_path_factory)
    _, err, code = cli("models", "add", str(single), "--name", "sf")
    assert code == 1 and "--config DIR" in err and "'v1' checkpoint" in err
    out, err, code = cli("models", "add", str(single), "--name", "sf", "--config", str(folder),
                         "--steps", "2", "--json")  # fmt: skip
    assert code == 0, err
    entry = json.loads(out)
    assert (entry["source"], entry["family"], entry["licence"]) == ("single-file", "sd15", "MIT")
    assert cli("models", "add", str(folder), "--name", "folder", "--steps", "2")[2] == 0
    renders = {}
    for name in ("sf", "folder"):
        out, err, code = cli("imagine", f"a red bird over the sea --model {name} --seed 9",
                             "--out", str(tmp_path / name), "--json")  # fmt: skip
        assert code == 0, err
        renders[name] = images(out)
    for a, b in zip(renders["sf"], renders["folder"], strict=True):
        assert np.array_equal(pixels(a), pixels(b))
        recipe = read_recipe(a)
        assert recipe is not None and recipe.model_hash == entry["content_hash"]
