"""Tiny random-weight diffusers models on disk, built once per test session and shared.

Each builder writes into the session's base temp folder and reuses what an earlier test module
of the same session built, so the pipelines are made once however many modules use them.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from imagineer.models.ldm_layout import save_single_file
from imagineer.models.tiny import (
    save_tiny_animatediff,
    save_tiny_ip_adapter,
    save_tiny_lora,
    save_tiny_sd,
)

_lock = threading.Lock()


def _root(factory: pytest.TempPathFactory) -> Path:
    root = factory.getbasetemp() / "tiny-models"
    root.mkdir(exist_ok=True)
    return root


def tiny_sd_dir(factory: pytest.TempPathFactory) -> Path:
    """A tiny Stable Diffusion pipeline folder (64 px base, MIT model card and licence)."""
    folder = _root(factory) / "tiny-sd"
    with _lock:
        if not (folder / "model_index.json").is_file():
            torch.set_num_threads(1)
            save_tiny_sd(folder)
    return folder


def tiny_animatediff_dir(factory: pytest.TempPathFactory) -> Path:
    folder = _root(factory) / "tiny-animatediff"
    with _lock:
        if not (folder / "model_index.json").is_file():
            torch.set_num_threads(1)
            save_tiny_animatediff(folder)
    return folder


def tiny_lora_file(factory: pytest.TempPathFactory) -> Path:
    path = _root(factory) / "tiny-lora.safetensors"
    sd = tiny_sd_dir(factory)
    with _lock:
        if not path.is_file():
            save_tiny_lora(path, sd)
    return path


def tiny_ip_adapter_file(factory: pytest.TempPathFactory) -> Path:
    """A random IP-Adapter for the tiny SD pipeline, with image_encoder/ beside it."""
    folder = _root(factory) / "tiny-ip-adapter"
    sd = tiny_sd_dir(factory)
    with _lock:
        if not (folder / "ip-adapter.safetensors").is_file():
            save_tiny_ip_adapter(folder, sd)
    return folder / "ip-adapter.safetensors"


def tiny_single_file(factory: pytest.TempPathFactory) -> Path:
    """The tiny SD pipeline as one original-layout checkpoint (UNet, VAE, text encoder)."""
    path = _root(factory) / "single" / "tiny-sd.safetensors"
    sd = tiny_sd_dir(factory)
    with _lock:
        if not path.is_file():
            save_single_file(sd, path)
    return path
