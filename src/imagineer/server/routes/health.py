"""/healthz and /v1/models."""

from __future__ import annotations

from fastapi import APIRouter

from imagineer.server.deps import PrincipalDep, StateDep
from imagineer.server.schemas import Health, ModelPublic, ModelsPublic

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(state: StateDep) -> Health:
    """Whether the server answers, and whether its worker thread runs (no key needed)."""
    worker = state.worker
    if worker is None:
        return Health(worker="off")
    return Health(worker="running" if worker.alive else "stopped")


@router.get("/v1/models")
def list_models(state: StateDep, _principal: PrincipalDep) -> ModelsPublic:
    """Installed models (OpenAI's list shape), without loading any."""
    models = state.service.models()
    return ModelsPublic(data=[ModelPublic.from_summary(m) for m in models])
