"""Resumable rectified-flow training of the embedded text-to-image model."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from imagineer.engines.embedded.engine import read_exported
from imagineer.engines.embedded.text import TextStates
from imagineer.engines.embedded.unet import UNet, UNetConfig, grows_into, load_grown
from imagineer.train import data as data_mod


@dataclass(frozen=True)
class FlowTrainConfig:
    """Everything a training run depends on; saved in the checkpoint."""

    data: Path  # a folder made by `imagineer train data`
    run: Path  # checkpoints and the log go here
    minutes: float = 60.0  # stop after this much training time (this invocation)
    batch: int = 64
    lr: float = 3e-4
    warmup: int = 60  # steps of linear warm-up (also after a resume with a fresh optimiser)
    ema: float = 0.999
    caption_dropout: float = 0.1  # empty prompt this often: what guidance and --no need
    object_weight: float = 0.0  # extra loss weight on object pixels (small objects, else blobs)
    t_shift: float = 1.0  # > 1 trains more at high noise, where the layout is decided
    checkpoint_every_s: float = 300.0
    log_every: int = 25
    threads: int | None = None
    seed: int = 0
    device: str = "cpu"
    unet: UNetConfig = field(default_factory=UNetConfig)
    init: Path | None = None  # shipped weights to start from when the run has no checkpoint


def flow_loss(
    model: UNet,
    x0: torch.Tensor,
    text: TextStates,
    gen: torch.Generator,
    weight: torch.Tensor | None = None,
    t_shift: float = 1.0,
) -> torch.Tensor:
    """Rectified-flow loss: x_t = (1-t) x0 + t noise, target v = noise - x0.

    `weight` (B, 1, H, W), if given, weighs each pixel's squared error; the loss stays a weighted
    mean, so its scale matches the plain loss. `t_shift` > 1 moves the logit-normal t towards
    pure noise (t' = s·t / (1 + (s-1)·t)), where the layout — where things go, how many — is set.
    """
    b = x0.shape[0]
    z = torch.randn(b, generator=gen, device=x0.device)
    t = torch.sigmoid(z + math.log(t_shift))  # logit-normal t, shifted
    noise = torch.randn(x0.shape, generator=gen, device=x0.device)
    xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * noise
    err = (model(xt, t, text) - (noise - x0)).square()
    if weight is None:
        return err.mean()
    return (err * weight).sum() / (weight.sum() * x0.shape[1])


def drop_captions(text: TextStates, null: TextStates, p: float, gen: torch.Generator) -> TextStates:
    """Caption dropout: each prompt becomes the empty prompt with probability `p` (what
    classifier-free guidance and --no need)."""
    drop = torch.rand(text.tokens.shape[0], generator=gen) < p
    if not bool(drop.any()):
        return text
    tokens, mask = text.tokens.clone(), text.mask.clone()
    n = null.tokens.shape[1]
    if tokens.shape[1] < n:
        return text
    tokens[drop] = 0
    mask[drop] = False
    tokens[drop, :n] = null.tokens[0]
    mask[drop, :n] = null.mask[0]
    return TextStates(tokens, mask)


class Trainer:
    """Owns the model, its EMA copy and the optimiser; saves and resumes checkpoints."""

    def __init__(self, cfg: FlowTrainConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.device = torch.device(cfg.device)
        self.model = UNet(cfg.unet).to(self.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.01)
        self.step = 0
        self.seconds = 0.0  # training time over all invocations
        self.gen = torch.Generator().manual_seed(cfg.seed)
        cfg.run.mkdir(parents=True, exist_ok=True)
        self._resume()

    @property
    def checkpoint_path(self) -> Path:
        return self.cfg.run / "checkpoint.pt"

    def _resume(self) -> None:
        path = self.checkpoint_path
        if not path.exists():
            if self.cfg.init is not None:
                self._start_from_export(self.cfg.init)
            return
        state = torch.load(path, map_location=self.device, weights_only=False)
        saved = UNetConfig.from_dict(state["unet"]) if "unet" in state else self.cfg.unet
        grew = load_grown(self.model, state["model"], saved)
        load_grown(self.ema, state["ema"], saved)
        if grew:  # the optimiser's moments do not cover the new parts: start it afresh
            self.log(f"grew the model from {saved} to {self.cfg.unet} (fresh optimiser)")
        elif "opt" in state:
            self.opt.load_state_dict(state["opt"])
        self.step = state["step"]
        self.seconds = state["seconds"]
        self.gen.set_state(state["gen"])
        self.resumed_with_optimiser = "opt" in state and not grew
        self.log(f"resumed at step {self.step} ({self.seconds / 60:.1f} min trained)")

    def _start_from_export(self, path: Path) -> None:
        """Continue from exported EMA weights (what the repo ships): a compact resume."""
        exported = read_exported(path)
        shipped = UNetConfig.from_dict(exported.config)
        if not grows_into(shipped, self.cfg.unet):
            raise ValueError(f"{path} was trained with {shipped}, not {self.cfg.unet}")
        load_grown(self.model, exported.state, shipped)
        load_grown(self.ema, exported.state, shipped)
        self.step = int(exported.meta.get("step", "0"))
        self.seconds = float(exported.meta.get("trained_minutes", "0")) * 60
        self.log(f"started from {path} at step {self.step} (fresh optimiser, warm-up again)")

    def save(self) -> None:
        write_checkpoint(self.checkpoint_path, self, unet=self.cfg.unet.to_dict())

    def _lr(self, step_in_run: int) -> float:
        return self.cfg.lr * min(1.0, (step_in_run + 1) / self.cfg.warmup)

    def ema_decay(self, run_step: int) -> float:
        """EMA decay with warm-up: early on the average must follow the model, not the init.

        A fixed 0.999 keeps 0.999**n of the random initial weights after n steps (30% after
        1,200), and an export that early draws noise; (1+n)/(10+n) ramps towards cfg.ema.
        """
        return min(self.cfg.ema, (1 + run_step) / (10 + run_step))

    def _update_ema(self, run_step: int) -> None:
        decay = self.ema_decay(run_step)
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                e.lerp_(p, 1 - decay)
            for eb, mb in zip(self.ema.buffers(), self.model.buffers(), strict=True):
                eb.copy_(mb)

    def train(self, on_checkpoint: Callable[[Trainer], None] | None = None) -> None:
        """Train for cfg.minutes, checkpointing every few minutes and at the end."""
        buckets, null = data_mod.load(self.cfg.data)
        sizes = torch.tensor([len(b.images) for b in buckets], dtype=torch.float)
        budget = self.cfg.minutes * 60
        base_seconds = self.seconds
        start = last_ckpt = time.perf_counter()
        # A resumed optimiser needs no warm-up; a fresh one after a compact resume does.
        run_step = self.cfg.warmup if getattr(self, "resumed_with_optimiser", False) else 0
        losses: list[float] = []
        columns = (
            TextColumn("step {task.fields[step]}"),
            BarColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with (self.cfg.run / "log.jsonl").open("a") as logf, Progress(*columns) as progress:
            task = progress.add_task("train", total=budget, step=self.step, loss="-")
            while (elapsed := time.perf_counter() - start) < budget:
                losses.append(self._train_step(buckets, sizes, null, run_step))
                self.step += 1
                run_step += 1
                self.seconds = base_seconds + elapsed
                if self.step % self.cfg.log_every == 0:
                    mean = sum(losses) / len(losses)
                    losses.clear()
                    row = {
                        "step": self.step,
                        "loss": round(mean, 5),
                        "minutes": round(self.seconds / 60, 2),
                        "lr": self._lr(run_step),
                    }
                    logf.write(json.dumps(row) + "\n")
                    logf.flush()
                    progress.update(task, completed=elapsed, step=self.step, loss=f"{mean:.4f}")
                if time.perf_counter() - last_ckpt > self.cfg.checkpoint_every_s:
                    self._checkpoint(on_checkpoint)
                    last_ckpt = time.perf_counter()
        self._checkpoint(on_checkpoint)

    def _train_step(
        self, buckets: list[data_mod.Bucket], sizes: torch.Tensor, null: TextStates, run_step: int
    ) -> float:
        bucket = buckets[int(torch.multinomial(sizes, 1, generator=self.gen))]
        idx = torch.randint(len(bucket.images), (self.cfg.batch,), generator=self.gen)
        x0, text = bucket.batch(idx)
        text = drop_captions(text, null, self.cfg.caption_dropout, self.gen)
        weight = None
        if self.cfg.object_weight > 0:
            weight = (1.0 + self.cfg.object_weight * bucket.object_mask(idx)).to(self.device)
        for group in self.opt.param_groups:
            group["lr"] = self._lr(run_step)
        loss = flow_loss(
            self.model,
            x0.to(self.device),
            text.to(self.device),
            self.gen,
            weight,
            self.cfg.t_shift,
        )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self._update_ema(self.step)
        return float(loss.detach())

    def _checkpoint(self, on_checkpoint: Callable[[Trainer], None] | None) -> None:
        self.save()
        if on_checkpoint is not None:
            on_checkpoint(self)
        self.log(f"checkpoint at step {self.step} ({self.seconds / 60:.1f} min trained)")


class _Trains(Protocol):
    """What write_checkpoint reads of a trainer."""

    @property
    def model(self) -> torch.nn.Module: ...
    @property
    def ema(self) -> torch.nn.Module: ...
    @property
    def opt(self) -> torch.optim.Optimizer: ...
    @property
    def step(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def gen(self) -> torch.Generator: ...


def write_checkpoint(path: Path, trainer: _Trains, **extra: object) -> None:
    """A trainer's whole state (model, EMA, optimiser, step, time, generator) written atomically."""
    state = {
        "model": trainer.model.state_dict(),
        "ema": trainer.ema.state_dict(),
        "opt": trainer.opt.state_dict(),
        "step": trainer.step,
        "seconds": trainer.seconds,
        "gen": trainer.gen.get_state(),
        **extra,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def config_to_json(cfg: FlowTrainConfig) -> str:
    data = asdict(cfg)
    data["data"], data["run"] = str(cfg.data), str(cfg.run)
    return json.dumps(data, indent=2)


def images_per_second(steps: int, batch: int, seconds: float) -> float:
    return steps * batch / seconds if seconds > 0 else math.nan
