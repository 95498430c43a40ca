"""/v1/webhooks/secret and /v1/jobs/{id}/webhooks: the caller's signing secret, and deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from imagineer.jobs import WebhookDelivery
from imagineer.server.deps import PrincipalDep, StateDep
from imagineer.server.webhooks import DispatcherThread, user_secret

router = APIRouter(tags=["webhooks"])


@dataclass(frozen=True)
class Webhooks:
    """The app's webhook parts: the master secret, and the dispatcher thread (None when
    deliveries are left to worker processes)."""

    master: bytes
    dispatcher: DispatcherThread | None


def get_webhooks(request: Request) -> Webhooks:
    webhooks: Webhooks = request.app.state.webhooks
    return webhooks


WebhooksDep = Annotated[Webhooks, Depends(get_webhooks)]


class WebhookSecret(BaseModel):
    secret: str  # whsec_…: verify the webhook-signature header of your events with it
    scheme: str = "v1: base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{body}'"


class AttemptPublic(BaseModel):
    at: datetime
    status: int | None
    error: str | None
    duration_s: float


class DeliveryPublic(BaseModel):
    id: str  # the event's id (its webhook-id header)
    job_id: str
    event: str
    url: str
    state: str  # pending, delivered or failed
    attempts: int
    max_attempts: int
    created_at: datetime
    next_attempt_at: datetime | None  # None once delivered or given up
    delivered_at: datetime | None
    last_status: int | None
    last_error: str | None
    log: list[AttemptPublic]

    @classmethod
    def from_delivery(cls, d: WebhookDelivery) -> DeliveryPublic:
        return cls(
            id=d.id,
            job_id=d.job_id,
            event=d.event,
            url=d.url,
            state=d.state.value,
            attempts=d.attempts,
            max_attempts=d.max_attempts,
            created_at=d.created_at,
            next_attempt_at=d.next_attempt_at if d.state.value == "pending" else None,
            delivered_at=d.delivered_at,
            last_status=d.last_status,
            last_error=d.last_error,
            log=[AttemptPublic(**vars(a)) for a in d.log],
        )


class DeliveriesPublic(BaseModel):
    data: list[DeliveryPublic]


@router.get("/v1/webhooks/secret")
def webhook_secret(webhooks: WebhooksDep, principal: PrincipalDep) -> WebhookSecret:
    """The secret that signs the caller's webhook events (the same on every call)."""
    return WebhookSecret(secret=user_secret(webhooks.master, principal.user_id))


@router.get("/v1/jobs/{job_id}/webhooks")
async def job_webhooks(job_id: str, state: StateDep, principal: PrincipalDep) -> DeliveriesPublic:
    """The webhook deliveries of one of the caller's jobs, with every attempt."""
    job = await run_in_threadpool(state.service.job, job_id, user=principal.user_id)
    found = await run_in_threadpool(state.store.webhooks, job_id=job.id, user_id=job.user_id)
    return DeliveriesPublic(data=[DeliveryPublic.from_delivery(d) for d in found])
