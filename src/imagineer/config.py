"""One Settings object for a whole imagineer process, built explicitly and passed in."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

_ENV_PREFIX = "IMAGINEER_"


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("imagineer", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Where imagineer keeps its state and how it behaves; never read from globals."""

    data_dir: Path = field(default_factory=_default_data_dir)  # jobs DB, keys, model registry
    output_dir: Path = Path("outputs")  # where the CLI writes images unless told otherwise
    database_url: str | None = None  # None: an SQLite file in data_dir; else any SQLAlchemy URL
    device: str = "auto"  # "auto" picks CUDA when present, else CPU; or "cpu", "cuda", "cuda:1"
    threads: int | None = None  # torch CPU threads; None keeps torch's own choice
    default_model: str = "embedded"  # the engine used when a prompt names no --model
    watermark: bool = True  # invisible watermark in pixels; the manifest says when it is off
    sign: bool = True  # C2PA manifest on every output
    signing_cert: Path | None = None  # operator's PEM chain (end-entity first); None: self-signed
    signing_key: Path | None = None  # operator's PEM private key for signing_cert
    policy_file: Path | None = None  # safety policy TOML; None: the safe default shipped
    output_check: bool = False  # run the optional NSFW check on generated images
    # Master secret of webhook signatures (each user's secret derives from it); None: a random
    # one kept in data_dir. Worker processes on other machines need the same value.
    webhook_secret: str | None = field(default=None, repr=False)
    # Let webhooks go to loopback, private, link-local and other internal addresses. Off: a key
    # holder must not make the server call its own network (SSRF); on only when every key
    # holder may reach that network anyway (one user, a lab, tests).
    webhook_allow_private: bool = False

    @property
    def jobs_url(self) -> str:
        """The SQLAlchemy URL of the job store."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'jobs.sqlite3'}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from IMAGINEER_* environment variables, then explicit overrides."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for name, kind in _FIELDS.items():
            raw = env.get(_ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = _convert(name, raw, kind)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(cls(), **values)  # type: ignore[arg-type]


_FIELDS: dict[str, type] = {
    "data_dir": Path,
    "output_dir": Path,
    "database_url": str,
    "device": str,
    "threads": int,
    "default_model": str,
    "watermark": bool,
    "sign": bool,
    "signing_cert": Path,
    "signing_key": Path,
    "policy_file": Path,
    "output_check": bool,
    "webhook_secret": str,
    "webhook_allow_private": bool,
}


def _convert(name: str, raw: str, kind: type) -> object:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"{_ENV_PREFIX}{name.upper()}={raw!r}: use true or false")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{_ENV_PREFIX}{name.upper()}={raw!r}: use a whole number") from None
    if kind is Path:
        return Path(raw).expanduser()
    return raw
