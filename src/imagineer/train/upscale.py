"""Training of the embedded 2x upscaler on world renders at 32, 64, 128 and 256 px."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from imagineer.engines.embedded.upscaler import Upscaler, UpscalerConfig

PYRAMID = (256, 128, 64, 32)  # the world drawn large, then LANCZOS down like the base data


def _render_pyramids(args: tuple[int, int]) -> list[np.ndarray]:
    from imagineer.world import render, sample_scene

    seed, n = args
    rng = np.random.default_rng(seed)
    levels: list[list[np.ndarray]] = [[] for _ in PYRAMID]
    for _ in range(n):
        big = Image.fromarray(render(sample_scene(rng), PYRAMID[0], PYRAMID[0]))
        for i, size in enumerate(PYRAMID):
            im = big if size == PYRAMID[0] else big.resize((size, size), Image.Resampling.LANCZOS)
            levels[i].append(np.asarray(im))
    return [np.stack(level) for level in levels]


def build_pyramids(out: Path, count: int, *, seed: int = 7, workers: int = 2) -> None:
    """Render `count` scenes at 256 px and store the 256/128/64/32 px versions."""
    out.mkdir(parents=True, exist_ok=True)
    chunk = 250
    jobs = [
        (seed * 1000 + i, min(chunk, count - i * chunk))
        for i in range((count + chunk - 1) // chunk)
    ]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_render_pyramids, jobs))
    for i, size in enumerate(PYRAMID):
        np.save(out / f"level{size}.npy", np.concatenate([p[i] for p in parts]))


@dataclass(frozen=True)
class UpscaleTrainConfig:
    data: Path
    run: Path
    minutes: float = 15.0
    batch: int = 16
    patch: int = 64  # high-resolution patch side
    lr: float = 5e-4
    seed: int = 0
    upscaler: UpscalerConfig = field(default_factory=UpscalerConfig)
    init: Path | None = None  # exported weights to start from when the run has no checkpoint


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def train_upscaler(cfg: UpscaleTrainConfig, log: Callable[[str], None] = print) -> Upscaler:
    """Fit the 2x step on random (low, high) patch pairs from every pyramid level."""
    torch.manual_seed(cfg.seed)
    levels = {s: np.load(cfg.data / f"level{s}.npy", mmap_mode="r") for s in PYRAMID}
    model = Upscaler(cfg.upscaler)
    ckpt = cfg.run / "upscaler.pt"
    if ckpt.exists():
        model.load_state_dict(torch.load(ckpt))
        log("resumed upscaler")
    elif cfg.init is not None:
        model.load_state_dict(load_upscaler_state(cfg.init, cfg.upscaler))
        log(f"started from {cfg.init}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    cfg.run.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    step, losses = 0, []
    with (cfg.run / "upscaler_log.jsonl").open("a") as logf:
        while time.perf_counter() - start < cfg.minutes * 60:
            hi_size = int(rng.choice(PYRAMID[:3]))  # 256, 128 or 64 as the target
            lo, hi = _patches(levels[hi_size // 2], levels[hi_size], cfg, rng)
            loss = F.l1_loss(model(lo), hi)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            if step % 50 == 0:
                row = {"step": step, "l1": round(sum(losses) / len(losses), 5)}
                logf.write(json.dumps(row) + "\n")
                logf.flush()
                log(f"upscaler step {step} l1 {row['l1']}")
                losses.clear()
                torch.save(model.state_dict(), ckpt)
    torch.save(model.state_dict(), ckpt)
    return model


def _patches(
    lo_all: np.ndarray, hi_all: np.ndarray, cfg: UpscaleTrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    idx = np.sort(rng.choice(len(hi_all), cfg.batch, replace=False))
    size = hi_all.shape[1]
    p = min(cfg.patch, size)
    his, los = [], []
    for i in idx:
        y, x = (int(v) * 2 for v in rng.integers(0, (size - p) // 2 + 1, 2))
        his.append(hi_all[i, y : y + p, x : x + p])
        los.append(lo_all[i, y // 2 : (y + p) // 2, x // 2 : (x + p) // 2])
    return _to_tensor(np.stack(los)), _to_tensor(np.stack(his))


def load_upscaler_state(path: Path, expected: UpscalerConfig) -> dict[str, torch.Tensor]:
    """Weights of an exported upscaler as float32, after checking its shape matches."""
    from imagineer.engines.embedded.engine import read_exported

    exported = read_exported(path)
    shipped = UpscalerConfig(**exported.config)  # type: ignore[arg-type]
    if shipped != expected:
        raise ValueError(f"{path} holds an upscaler shaped {shipped}, not {expected}")
    return exported.state


def export_upscaler(model: Upscaler, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    path = folder / "embedded_upscaler.safetensors"
    save_file(state, str(path), metadata={"config": json.dumps(model.cfg.to_dict())})
    return path
