"""Writes trained weights as compact safetensors that the engine loads and training resumes from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

if TYPE_CHECKING:
    from imagineer.train.flow import Trainer


def export_unet(trainer: Trainer, folder: Path) -> Path:
    """EMA weights in fp16 plus config and training figures: what the engine ships."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to(torch.float16).contiguous() for k, v in trainer.ema.state_dict().items()
    }
    path = folder / "embedded_unet.safetensors"
    tmp = path.with_suffix(".tmp")
    meta = {
        "config": json.dumps(trainer.cfg.unet.to_dict()),
        "step": str(trainer.step),
        "trained_minutes": f"{trainer.seconds / 60:.1f}",
        "batch": str(trainer.cfg.batch),
    }
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    (folder / "embedded_unet.json").write_text(
        json.dumps(
            {
                "unet": trainer.cfg.unet.to_dict(),
                "step": trainer.step,
                "trained_minutes": round(trainer.seconds / 60, 1),
                "batch": trainer.cfg.batch,
            },
            indent=2,
        )
    )
    return path
