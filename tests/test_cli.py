"""CLI tests through typer's CliRunner, on the tiny random-weight engine of test_service."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from imagineer.cli import EXIT_PROMPT, EXIT_REFUSED, CliHooks, app
from imagineer.config import Settings
from imagineer.engines.embedded.engine import weights_available
from imagineer.runtime import Runtime, embedded_spec
from test_service import DENY_POLICY, make_runtime

Run = Callable[..., tuple[str, str, int]]  # (args…, hooks=None) -> (stdout, stderr, exit code)


def quick_runtime(settings: Settings) -> Runtime:
    return make_runtime(dataclasses.replace(settings, watermark=False, sign=False, threads=1))


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run `imagineer --data-dir TMP …` with the tiny engine; returns (stdout, stderr, code)."""
    for name in ("DATABASE_URL", "DEVICE", "OUTPUT_DIR", "DEFAULT_MODEL", "POLICY_FILE"):
        monkeypatch.delenv(f"IMAGINEER_{name}", raising=False)
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_POLICY)
    monkeypatch.setenv("IMAGINEER_POLICY_FILE", str(policy))
    runner = CliRunner()

    def run(*args: str, hooks: CliHooks | None = None) -> tuple[str, str, int]:
        result = runner.invoke(
            app,
            ["--data-dir", str(tmp_path / "data"), *args],
            obj=hooks or CliHooks(make_runtime=quick_runtime),
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.stdout, result.stderr, result.exit_code

    return run


def test_bad_prompt_shows_the_caret_and_exits_2(cli: Run, tmp_path: Path) -> None:
    _, err, code = cli("imagine", "a cat --stylise 200", "--out", str(tmp_path / "o"))
    assert code == EXIT_PROMPT
    caret = (
        "a cat --stylise 200\n      ^^^^^^^^^\nunknown parameter --stylise, did you mean --stylize?"
    )
    assert caret in err
    assert not (tmp_path / "o").exists()


def test_refused_prompt_exits_3_with_the_reason(cli: Run, tmp_path: Path) -> None:
    _, err, code = cli("imagine", "a zorblax", "--out", str(tmp_path / "o"))
    assert code == EXIT_REFUSED
    assert "refused (deployment_deny)" in err and "does not allow" in err


def test_imagine_json_parses_and_names_real_files(cli: Run, tmp_path: Path) -> None:
    out, _, code = cli(
        "imagine", "a red bird --seed 7", "--out", str(tmp_path / "o"), "--json", "--steps", "1"
    )
    assert code == 0
    data = json.loads(out)
    assert [image["recipe"]["seed"] for image in data["images"]] == [7, 8, 9, 10]
    assert all(Path(image["path"]).is_file() for image in data["images"])
    assert Path(data["grids"][0]).is_file()


def test_imagine_prints_the_grid_and_derived_commands_work(cli: Run, tmp_path: Path) -> None:
    out, _, code = cli(
        "imagine", "a red bird --seed 7", "--out", str(tmp_path / "o"), "--steps", "1"
    )
    assert code == 0
    grid = next(line for line in out.splitlines() if line.startswith("grid: "))
    assert Path(grid.removeprefix("grid: ")).is_file()
    first = next(iter(sorted((tmp_path / "o").glob("*_0.png"))))
    out, _, code = cli("upscale", str(first), "--out", str(tmp_path / "u"))
    assert code == 0 and len(list((tmp_path / "u").glob("*.png"))) == 1
    out, _, code = cli("vary", str(first), "--strong", "--out", str(tmp_path / "v"), "--steps", "1")
    assert code == 0 and len(list((tmp_path / "v").glob("*_grid.png"))) == 1
    _, err, code = cli("remix", grid.removeprefix("grid: "))
    assert code == 1 and "is a 2x2 grid" in err


def test_queue_then_work_then_show(cli: Run, tmp_path: Path) -> None:
    out, _, code = cli(
        "imagine", "a red bird", "--queue", "--json", "--steps", "1", "--out", str(tmp_path / "o")
    )
    assert code == 0
    job = json.loads(out)
    assert job["state"] == "queued"
    out, _, code = cli("jobs", "work", "--until-empty")
    assert code == 0 and f"{job['id']}: imagine done" in out
    # Job ids may start with "-": "--" keeps them from reading as options.
    out, _, code = cli("jobs", "show", "--json", "--", job["id"])
    shown = json.loads(out)
    assert shown["state"] == "done" and len(shown["result"]["images"]) == 4
    out, _, code = cli("jobs", "list", "--json")
    assert [j["id"] for j in json.loads(out)] == [job["id"]]
    _, err, code = cli("jobs", "cancel", "--", job["id"])
    assert code == 1 and "cannot go from done to cancelled" in err


def test_models_list_and_missing_weights_say_how_to_train(cli: Run, tmp_path: Path) -> None:
    out, _, code = cli("models", "list", "--json")
    assert code == 0
    assert [m["name"] for m in json.loads(out)] == ["embedded", "embedded-video"]

    def without_weights(settings: Settings) -> Runtime:
        runtime = Runtime.from_settings(settings)
        spec = embedded_spec("cpu")
        missing = dataclasses.replace(spec, available=lambda: weights_available(tmp_path))
        runtime.registry.register(missing, replace=True)
        return runtime

    _, err, code = cli("imagine", "a cat", hooks=CliHooks(make_runtime=without_weights))
    assert code == 1
    assert "missing embedded_unet.safetensors" in err
    assert "imagineer train flow --export" in err


def test_verify_an_unmarked_file(cli: Run, tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(plain)
    out, _, code = cli("verify", str(plain), "--json")
    assert code == 0 and json.loads(out)["finding"] == "no_marks"


def test_train_is_mounted(cli: Run) -> None:
    out, _, code = cli("train", "--help")
    assert code == 0 and "flow" in out and "upscaler" in out
