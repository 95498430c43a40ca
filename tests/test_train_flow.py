"""Training code paths of the embedded model on a tiny net and a few scenes: EMA, resume, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from imagineer.engines.embedded.unet import UNetConfig
from imagineer.train import data as data_mod
from imagineer.train.export import export_unet
from imagineer.train.flow import FlowTrainConfig, Trainer

TINY = UNetConfig.tiny()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    data_mod.build(out, data_mod.DataSpec(count=96, seed=3), workers=1, log=lambda _: None)
    return out


def config(data: Path, run: Path, **kw: object) -> FlowTrainConfig:
    base: dict[str, object] = dict(
        data=data, run=run, minutes=0.02, batch=4, unet=TINY, log_every=1
    )
    base.update(kw)
    return FlowTrainConfig(**base)  # type: ignore[arg-type]


def test_ema_decay_warms_up_then_holds(tmp_path: Path, tiny_data: Path) -> None:
    trainer = Trainer(config(tiny_data, tmp_path / "run"), log=lambda _: None)
    decays = [trainer.ema_decay(n) for n in (0, 10, 100, 1000, 100_000)]
    assert decays[0] == pytest.approx(0.1)
    assert decays == sorted(decays)
    assert decays[-1] == trainer.cfg.ema
    # After 1,000 steps the initial weights must weigh almost nothing in the average.
    kept = 1.0
    for n in range(1000):
        kept *= trainer.ema_decay(n)
    assert kept < 1e-3


def test_train_checkpoint_resume_and_export(tmp_path: Path, tiny_data: Path) -> None:
    run = tmp_path / "run"
    first = Trainer(config(tiny_data, run), log=lambda _: None)
    init = {k: v.clone() for k, v in first.ema.state_dict().items()}
    first.train()
    assert first.step > 0
    assert (run / "checkpoint.pt").exists()
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert rows and all(r["loss"] > 0 for r in rows)
    moved = any(not torch.equal(init[k], v) for k, v in first.ema.state_dict().items())
    assert moved, "the EMA copy did not follow the model"

    second = Trainer(config(tiny_data, run), log=lambda _: None)
    assert second.step == first.step
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k])

    path = export_unet(second, tmp_path / "export")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert int(meta["step"]) == first.step
    assert UNetConfig.from_dict(json.loads(meta["config"])) == TINY

    third = Trainer(config(tiny_data, tmp_path / "fresh", init=path), log=lambda _: None)
    assert third.step == first.step
    for k, v in third.model.state_dict().items():
        assert torch.allclose(v, second.ema.state_dict()[k].half().float())
