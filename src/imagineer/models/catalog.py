"""The model registry: the user's checkpoints and LoRAs by name, kept as JSON in the data dir.

Why a JSON file and not the jobs database: the jobs database may be a PostgreSQL server shared
by many machines, while a model entry names files on one machine's disk. A small JSON file in
that machine's data dir is read without a database, can be read and fixed by hand, and needs no
migrations. Writes take a lock file and replace the file atomically, so two `imagineer models
add` at once both land.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imagineer.engines.base import Capability

CATALOG_FILE = "models.json"
FORMAT_VERSION = 1
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESERVED = frozenset({"embedded"})
SOURCES = ("folder", "single-file", "hf-cache", "lora", "ip-adapter")


class CatalogError(ValueError):
    """A registry operation that cannot be done as asked; the message says what to change."""


@dataclass(frozen=True)
class FileStamp:
    """One file of a model as it was hashed: change detection without re-reading it."""

    path: str  # relative to the entry's path (the file name for a single file)
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class LoraRef:
    """A registered LoRA applied to a model with a weight (0 = off, 1 = as trained)."""

    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class ModelEntry:
    """One registered model (or LoRA): where it is, what it is, and what it runs at."""

    name: str  # what --model selects
    source: str  # one of SOURCES
    path: str  # absolute: the diffusers folder, the checkpoint file, or the cache snapshot
    family: str  # a name from imagineer.models.families (empty for a LoRA)
    pipeline: str  # the diffusers pipeline class that loads it
    capabilities: tuple[str, ...]
    base_side: int  # square side in pixels that --ar sizes are planned around
    size_multiple: int
    default_steps: int
    default_guidance: float
    content_hash: str  # sha256 over the files diffusers reads (see sources.hash_files)
    files: tuple[FileStamp, ...]
    licence: str = ""  # a licence name (model card, safetensors metadata), when found
    licence_text: str = ""  # the licence file's text, when the model ships one
    config: str | None = None  # single file: the diffusers folder its configs come from
    repo_id: str | None = None  # hf-cache: the repository id
    revision: str | None = None  # hf-cache: the snapshot's commit
    variant: str | None = None  # weight variant the folder holds ("fp16"), None for plain
    loras: tuple[LoraRef, ...] = ()  # applied whenever the model loads
    ip_adapter: str | None = None  # a registered IP-Adapter that --sref loads into the model
    image_encoder: str | None = None  # an IP-Adapter's CLIP image encoder folder
    frames: int = 1  # video: default frames per clip
    fps: int = 8  # video: default frame rate
    description: str = ""
    added_at: str = ""

    @property
    def is_lora(self) -> bool:
        return self.source == "lora"

    @property
    def is_ip_adapter(self) -> bool:
        return self.source == "ip-adapter"

    @property
    def is_model(self) -> bool:
        """A checkpoint that renders (not a LoRA or IP-Adapter that plugs into one)."""
        return not (self.is_lora or self.is_ip_adapter)

    @property
    def capability_set(self) -> frozenset[Capability]:
        return frozenset(Capability(c) for c in self.capabilities)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelEntry:
        values = dict(data)
        values["capabilities"] = tuple(values.get("capabilities", ()))
        values["files"] = tuple(FileStamp(**f) for f in values.get("files", ()))
        values["loras"] = tuple(LoraRef(**r) for r in values.get("loras", ()))
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(values) - known
        if unknown:
            raise CatalogError(f"model entry {data.get('name')!r} has unknown fields {unknown}")
        return cls(**values)


def check_name(name: str) -> str:
    """A valid model name, or CatalogError saying what a name may hold."""
    if not NAME_RE.fullmatch(name):
        raise CatalogError(
            f"model name {name!r}: use 1-64 letters, digits, '.', '-' and '_', "
            "starting with a letter or digit"
        )
    if name in RESERVED:
        raise CatalogError(f"model name {name!r} is reserved for the built-in model")
    return name


@dataclass
class Catalog:
    """The registry file of one data dir."""

    data_dir: Path
    _cache: dict[str, ModelEntry] | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.data_dir / CATALOG_FILE

    def entries(self) -> list[ModelEntry]:
        """Every entry, models and LoRAs, in the order they were added."""
        return list(self._read().values())

    def models(self) -> list[ModelEntry]:
        return [e for e in self.entries() if e.is_model]

    def get(self, name: str) -> ModelEntry:
        entries = self._read()
        if name not in entries:
            known = ", ".join(entries) or "none"
            raise CatalogError(f"no registered model {name!r} (registered: {known})")
        return entries[name]

    def add(self, entry: ModelEntry, *, replace_existing: bool = False) -> None:
        """Record `entry`; an existing name is an error unless `replace_existing`."""
        check_name(entry.name)
        with self._locked() as entries:
            if entry.name in entries and not replace_existing:
                raise CatalogError(
                    f"a model called {entry.name!r} is already registered: pick another --name, "
                    "or pass --replace to register this one in its place"
                )
            for ref in entry.loras:
                lora = entries.get(ref.name)
                if lora is None or not lora.is_lora:
                    raise CatalogError(f"--lora {ref.name}: no registered LoRA by that name")
            if entry.ip_adapter is not None:
                from imagineer.models.adapters import check_fits

                adapter = entries.get(entry.ip_adapter)
                if adapter is None:
                    raise CatalogError(
                        f"--ip-adapter {entry.ip_adapter}: no registered IP-Adapter by that name "
                        "(register it with `imagineer models add ADAPTER.safetensors`)"
                    )
                check_fits(entry, adapter)
            entries[entry.name] = entry

    def update(self, entry: ModelEntry) -> None:
        """Replace the stored entry of the same name (after re-hashing changed files)."""
        with self._locked() as entries:
            if entry.name not in entries:
                raise CatalogError(f"no registered model {entry.name!r}")
            entries[entry.name] = entry

    def remove(self, name: str) -> ModelEntry:
        """Forget a model (its files stay where they are); a LoRA in use cannot go."""
        with self._locked() as entries:
            if name not in entries:
                raise CatalogError(f"no registered model {name!r}")
            users = [
                e.name
                for e in entries.values()
                if any(r.name == name for r in e.loras) or e.ip_adapter == name
            ]
            if users:
                what = "IP-Adapter" if entries[name].is_ip_adapter else "LoRA"
                raise CatalogError(
                    f"{what} {name!r} is used by {', '.join(users)}: remove those models first"
                )
            return entries.pop(name)

    # --- storage -----------------------------------------------------------------------------

    def _read(self) -> dict[str, ModelEntry]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        return _parse(raw, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, ModelEntry]]:
        """Read, let the caller change, and write back, with other writers held off."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.data_dir / (CATALOG_FILE + ".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                entries = self._read()
                yield entries
                self._write(entries)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, entries: Mapping[str, ModelEntry]) -> None:
        data = {"version": FORMAT_VERSION, "models": [e.to_dict() for e in entries.values()]}
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def _parse(raw: str, path: Path) -> dict[str, ModelEntry]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CatalogError(f"{path} is not valid JSON ({err}): fix or delete it") from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise CatalogError(f"{path}: expected a version {FORMAT_VERSION} model registry")
    entries = [ModelEntry.from_dict(item) for item in data.get("models", [])]
    return {e.name: e for e in entries}
