"""The HTTP app for tests: a runtime over a given engine in a temporary folder, polling quickly."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from imagineer.runtime import Runtime
from imagineer.server.app import create_app
from imagineer.server.options import ServerOptions
from imagineer.service import Service
from test_service import DENY_POLICY, quiet_settings

LOCAL = ("127.0.0.1", 50000)  # a client on this machine: what keyless local mode needs
FAST = {"poll_interval_s": 0.05, "heartbeat_s": 0.1, "events_poll_s": 0.05}


def build_app(
    tmp_path: Path, engine: object, settings: Mapping[str, Any] | None = None, **changes: Any
) -> tuple[FastAPI, Runtime, Service]:
    """An app over `engine` as "embedded", its worker off unless asked; the runtime is the
    caller's to close. `watermark`, `sign` and `settings` change the Settings (the policy denies
    "zorblax"), the other `changes` the ServerOptions."""
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_POLICY)
    marks = {"watermark": changes.pop("watermark", False), "sign": changes.pop("sign", False)}
    config = quiet_settings(tmp_path, policy_file=policy, **{**marks, **(settings or {})})
    runtime = Runtime.from_settings(config)
    runtime.add_engine(engine, name="embedded")
    service = Service(runtime)
    options = ServerOptions(**{"worker": False, **FAST, **changes})
    return create_app(config, service=service, options=options), runtime, service
