"""The adherence benchmark end to end on tiny random engine weights, and its refusal without any."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from imagineer.engines.embedded.engine import UNET_FILE, UPSCALER_FILE
from imagineer.engines.embedded.unet import UNet, UNetConfig
from imagineer.engines.embedded.upscaler import Upscaler, UpscalerConfig
from imagineer.world.evaluate import default_path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_adherence.py"
TINY_UNET = UNetConfig.tiny()


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120
    )


def _tiny_weights(folder: Path) -> None:
    torch.manual_seed(0)
    unet, upscaler = UNet(TINY_UNET), Upscaler(UpscalerConfig.tiny())
    for model, name in ((unet, UNET_FILE), (upscaler, UPSCALER_FILE)):
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(folder / name), metadata={"config": json.dumps(model.cfg.to_dict())})


@pytest.mark.slow
def test_bench_refuses_without_engine_weights(tmp_path: Path) -> None:
    done = _bench("--n", "2", "--weights", str(tmp_path), "--results", str(tmp_path))
    assert done.returncode != 0
    assert "embedded model weights are missing" in done.stderr
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.slow
def test_bench_scores_a_tiny_engine(tmp_path: Path) -> None:
    if not default_path().exists():
        pytest.fail("the evaluator weights are not shipped")
    _tiny_weights(tmp_path)
    done = _bench(
        "--n", "8", "--steps", "1", "--weights", str(tmp_path), "--results", str(tmp_path),
        "--name", "tiny",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "all stated right" in done.stdout
    rows = {t["label"]: t for t in json.loads((tmp_path / "tiny.json").read_text())["timings"]}
    assert set(rows) == {"engine", "reference", "unconditional", "shuffled ref"}
    # The world's own renders of the prompts are what the judge knows best; noise is not.
    assert rows["reference"]["mean"] >= 0.8
    assert rows["engine"]["all_right"] <= 0.25
    assert rows["reference"]["prompts_scored"] == 8
