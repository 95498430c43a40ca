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


def test_object_masks_cover_the_objects_only(tiny_data: Path) -> None:
    data_mod.object_masks(tiny_data, workers=1, log=lambda _: None)
    buckets, _ = data_mod.load(tiny_data)
    for bucket in buckets:
        assert bucket.masks is not None
        assert bucket.masks.shape == bucket.images.shape[:1] + bucket.images.shape[2:]
    folder = sorted(tiny_data.glob("bucket*"))[0]
    scenes = [json.loads(line) for line in (folder / "scenes.jsonl").read_text().splitlines()]
    masks = buckets[0].masks
    assert masks is not None
    covered = masks.flatten(1).float().mean(1)
    with_objects = torch.tensor([s["objects"] is not None for s in scenes])
    assert bool((covered[~with_objects] == 0).all()), "a scene without objects has a mask"
    assert float(covered[with_objects].mean()) > 0.005  # objects are drawn, and found
    assert float(covered.max()) < 0.6  # the sky and ground are not objects


def test_weighted_flow_loss_is_a_weighted_mean(tmp_path: Path, tiny_data: Path) -> None:
    from imagineer.train.flow import flow_loss

    trainer = Trainer(config(tiny_data, tmp_path / "run"), log=lambda _: None)
    buckets, _ = data_mod.load(tiny_data)
    x0, text = buckets[0].batch(torch.arange(4))

    def loss(weight: torch.Tensor | None) -> float:
        return float(flow_loss(trainer.model, x0, text, torch.Generator().manual_seed(1), weight))

    ones = torch.ones(4, 1, *x0.shape[2:])
    assert loss(ones) == pytest.approx(loss(None), rel=1e-5)
    assert loss(ones * 7) == pytest.approx(loss(None), rel=1e-5)  # the scale is kept
    half = ones.clone()
    half[..., : x0.shape[2] // 2, :] = 0  # only the bottom half counts
    assert loss(half) != pytest.approx(loss(None), rel=1e-3)


def test_object_weight_needs_masks(tmp_path: Path, tiny_data: Path) -> None:
    bare = tmp_path / "bare"
    data_mod.build(bare, data_mod.DataSpec(count=8, seed=4), workers=1, log=lambda _: None)
    trainer = Trainer(config(bare, tmp_path / "run", object_weight=4.0), log=lambda _: None)
    with pytest.raises(FileNotFoundError, match="imagineer train masks"):
        trainer.train()


def test_a_unet_grows_position_aware_attention_without_changing_its_output() -> None:
    from dataclasses import replace

    from imagineer.engines.embedded.text import TextStates
    from imagineer.engines.embedded.unet import UNet, load_grown

    old_cfg = replace(TINY, attn_coords=False)
    torch.manual_seed(0)
    old = UNet(old_cfg).eval()
    for p in old.parameters():  # no zero-initialised layers: every part must matter
        torch.nn.init.normal_(p, std=0.05)
    grown = UNet(replace(TINY, attn_coords=True)).eval()
    assert load_grown(grown, old.state_dict(), old_cfg) is True
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([0.3, 0.9])
    text = TextStates(torch.randn(2, 5, TINY.text_dim), torch.ones(2, 5, dtype=torch.bool))
    with torch.no_grad():
        assert torch.equal(old(x, t, text), grown(x, t, text))
    # Weights saved before the field existed load as a model without it.
    legacy = {k: v for k, v in old_cfg.to_dict().items() if k != "attn_coords"}
    assert UNetConfig.from_dict(legacy) == old_cfg
    # Anything but that growth is refused, naming both shapes.
    with pytest.raises(ValueError, match="do not fit"):
        load_grown(old, grown.state_dict(), replace(TINY, channels=(8, 32)))


def test_training_resumes_an_old_checkpoint_into_the_grown_model(
    tmp_path: Path, tiny_data: Path
) -> None:
    from dataclasses import replace

    run = tmp_path / "run"
    old_cfg = replace(TINY, attn_coords=False)
    Trainer(config(tiny_data, run, unet=old_cfg), log=lambda _: None).train()
    grown = Trainer(config(tiny_data, run), log=lambda _: None)  # default: attn_coords on
    assert grown.step > 0 and not grown.resumed_with_optimiser
    grown.train()
    moved = [
        p for name, p in grown.model.named_parameters() if ".pos." in name and p.abs().sum() > 0
    ]
    assert moved, "the new position layers did not train"


def test_t_shift_moves_training_towards_pure_noise(tiny_data: Path) -> None:
    from imagineer.engines.embedded.text import TextStates
    from imagineer.engines.embedded.unet import UNet
    from imagineer.train.flow import flow_loss

    class Recording(UNet):
        seen: list[torch.Tensor]

        def forward(self, x: torch.Tensor, t: torch.Tensor, text: TextStates) -> torch.Tensor:
            self.seen.append(t)
            return super().forward(x, t, text)

    model = Recording(TINY)
    buckets, _ = data_mod.load(tiny_data)
    x0, text = buckets[0].batch(torch.arange(8))

    def times(shift: float) -> torch.Tensor:
        model.seen = []
        gen = torch.Generator().manual_seed(2)
        for _ in range(40):
            flow_loss(model, x0, text, gen, t_shift=shift)
        return torch.cat(model.seen)

    plain, shifted = times(1.0), times(3.0)
    assert abs(float(plain.median()) - 0.5) < 0.08
    # t' = s t / (1 + (s-1) t): the median moves from 1/2 to 3/4
    assert abs(float(shifted.median()) - 0.75) < 0.06
    assert float((shifted > 0.85).float().mean()) > 2 * float((plain > 0.85).float().mean())
