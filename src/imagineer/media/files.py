"""Atomic file output: write to a temporary name beside the target, then rename over it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is synced and renamed to `path`.

    The writer creates the temporary file itself (so the usual umask applies). If the block
    raises, the temporary file is removed and `path` is left as it was: a crash never leaves
    a half-written output under the real name. The parent folder is created when missing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"the writer did not create {tmp.name}")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically and return `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
