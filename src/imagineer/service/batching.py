"""Queued jobs run together: which jobs can share an engine batch, and where each attempt writes.

A job's batch key names what makes engine inputs batchable (engine, size, steps, kind); the
worker claims jobs with equal keys together. Each attempt of a job writes into its own folder,
so an attempt that was taken over (its worker was killed, or stalled) can never mix files with
the attempt that reports, and its leftovers are removed by the next.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imagineer.prompts import PromptError, parse_all
from imagineer.service.jobs import ImagineJob, JobRequest

logger = logging.getLogger(__name__)

# Set before the first matrix product of the process, this makes MKL's results independent of
# the number of rows (batch size); without it a batched image can differ in the last bit.
_MKL_STRICT = ("MKL_CBWR", "AVX2,STRICT")


def batch_key(request: JobRequest, default_model: str) -> str:
    """The key of jobs that may run in one engine batch; "" for a job that runs alone.

    Only text-to-image grids are batched across jobs: a variation's size comes from its
    source image, an upscale runs per image anyway, and a remix must re-render its own grid
    alone to give the same pixels as the original.
    """
    if not isinstance(request, ImagineJob):
        return ""
    try:
        parsed = parse_all(request.prompt)
    except (PromptError, ValueError):
        return ""  # the worker reports the error; such a job never joins a batch
    keys = set()
    for item in parsed:
        p = item.params
        if p.video:
            return ""
        effort = f"s{request.steps}" if request.steps is not None else f"q{p.quality}d{p.draft:d}"
        model = p.model or default_model
        keys.add(f"imagine|{model}|{p.aspect[0]}:{p.aspect[1]}|{effort}|t{p.tile:d}")
    return keys.pop() if len(keys) == 1 else ""


def job_root(payload: Mapping[str, Any], job_id: str, output_dir: Path) -> Path:
    """The folder of all attempts of a job: <out_dir>/<job id>."""
    folder = payload.get("out_dir")
    base = Path(folder) if isinstance(folder, str) and folder else output_dir
    if not job_id or job_id in (".", "..") or "/" in job_id or os.sep in job_id:
        raise ValueError(f"job id {job_id!r} cannot name a folder")
    return base / job_id


def attempt_folder(root: Path, attempt: int) -> Path:
    """Where one attempt writes: <out_dir>/<job id>/<attempt>."""
    return root / str(attempt)


def clear_other_attempts(root: Path, attempt: int) -> None:
    """Remove what earlier attempts of the job left (they were taken over, not reported)."""
    if not root.is_dir():
        return
    for child in root.iterdir():
        if child.name != str(attempt) and child.name.isdigit() and child.is_dir():
            logger.info("removing files of an abandoned attempt: %s", child)
            shutil.rmtree(child, ignore_errors=True)


def remove_attempt(root: Path, attempt: int | None = None) -> None:
    """Remove one attempt's folder (attempt given) or every attempt's, and then the job's
    folder when nothing else is left in it."""
    targets = [attempt_folder(root, attempt)] if attempt is not None else _attempts(root)
    for folder in targets:
        shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        root.rmdir()  # only when empty


def _attempts(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [c for c in root.iterdir() if c.name.isdigit() and c.is_dir()]


def batch_invariant_numerics() -> None:
    """Make CPU results independent of batch size, so a job batched with others gets the
    pixels it gets alone, bit for bit. Costs about half the CPU speed.

    MKL reads its setting at its first use: call this before anything computes (a worker
    process calls it at start), and start the process with MKL_CBWR=AVX2,STRICT when that
    cannot be arranged. oneDNN and NNPACK pick kernels by batch size, so they are turned off.
    """
    name, value = _MKL_STRICT
    os.environ.setdefault(name, value)
    import torch

    torch.backends.mkldnn.set_flags(False)
    torch.backends.nnpack.set_flags(False)
    probe = torch.nn.Linear(64, 32)
    x = torch.randn(1, 64)
    with torch.no_grad():
        alone, batched = probe(x)[0], probe(x.repeat(16, 1))[0]
    if not torch.equal(alone, batched):
        raise RuntimeError(
            "batch-invariant numerics could not be set up: MKL was already in use; "
            f"start the process with {name}={value}"
        )
