"""The server's state and the `Annotated` dependencies that hand its parts to route handlers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from imagineer.config import Settings
from imagineer.jobs import JobStore
from imagineer.runtime import Runtime
from imagineer.server.auth import Principal, authenticate
from imagineer.server.keys import KeyStore
from imagineer.server.limits import RateLimiter
from imagineer.server.media import UrlSigner
from imagineer.server.options import ServerOptions
from imagineer.server.signals import JobSignals
from imagineer.server.worker import InProcessWorker
from imagineer.service import Service


@dataclass(frozen=True)
class ServerState:
    """Everything one app serves from, built by create_app and kept on app.state.server."""

    settings: Settings
    options: ServerOptions
    runtime: Runtime
    service: Service
    keys: KeyStore
    limiter: RateLimiter
    signer: UrlSigner
    media_dir: Path
    worker: InProcessWorker | None  # None when separate `imagineer jobs work` processes run jobs
    signals: JobSignals  # wakes requests waiting on a job when this process changes it

    @property
    def store(self) -> JobStore:
        return self.runtime.store


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


StateDep = Annotated[ServerState, Depends(get_state)]


def get_service(state: StateDep) -> Service:
    return state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def get_principal(request: Request, state: StateDep) -> Principal:
    return authenticate(
        request,
        keys=state.keys,
        limiter=state.limiter,
        loopback_bind=state.options.loopback,
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]
