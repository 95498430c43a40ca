"""Queueing jobs for a caller: the daily quota, the steps limit, and the caller's media folder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from imagineer.jobs import Job
from imagineer.server.auth import Principal
from imagineer.server.deps import ServerState
from imagineer.server.egress import ForbiddenDestination, check_destination
from imagineer.server.errors import ApiError
from imagineer.server.limits import quota_wait_s, start_of_day
from imagineer.server.media import user_folder
from imagineer.service import JobRequest, UpscaleJob
from imagineer.service.styles import StyleSources


def out_dir(state: ServerState, principal: Principal) -> str:
    """Where the caller's outputs go (jobs name it, so any worker process writes there)."""
    return str(user_folder(state.media_dir, principal.user_id))


def style_sources(state: ServerState, principal: Principal) -> StyleSources:
    """What the caller's --sref may name: their uploads and images of their jobs; files on the
    server's disk only in local single-user mode (no key, loopback, this machine's client)."""
    uploads = user_folder(state.media_dir, principal.user_id) / "uploads"
    return StyleSources(paths=principal.key_id is None, uploads=uploads)


def submit_jobs(
    state: ServerState,
    principal: Principal,
    requests: Sequence[JobRequest],
    *,
    idempotency_key: str | None = None,
    webhook_url: str | None = None,
) -> list[Job]:
    """Queue the requests as the caller's jobs; 429 over the daily quota, 422 over max steps.

    webhook_url (each job's end is posted there, signed): its form is checked by the request
    schema, where it points here (422 for an internal address, unless the settings allow)."""
    if webhook_url is not None:
        check_webhook(state, webhook_url)
    limit = state.options.max_steps
    for request in requests:
        steps = None if isinstance(request, UpscaleJob) else request.steps
        if steps is not None and steps > limit:
            raise ApiError(422, f"steps={steps}: this server allows at most {limit}", param="steps")
    now = datetime.now(UTC)
    quota = state.options.jobs_per_day
    used = (
        0 if quota is None else state.keys.jobs_created_since(principal.user_id, start_of_day(now))
    )
    wait = quota_wait_s(used, len(requests), quota, now)
    if wait > 0:
        raise ApiError(
            429,
            f"daily quota reached: {used} of {quota} jobs today (UTC); it resets at midnight UTC",
            code="quota_exceeded",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    key = idempotency_key if len(requests) == 1 else None
    sources = style_sources(state, principal)
    jobs = [
        state.service.submit(
            request,
            user=principal.user_id,
            idempotency_key=key,
            webhook_url=webhook_url,
            sources=sources,
        )
        for request in requests
    ]
    if state.worker is not None:
        state.worker.wake()
    return jobs


def check_webhook(state: ServerState, url: str) -> None:
    """422 unless the server may post to `url` (a public address; see egress)."""
    allow = state.settings.webhook_allow_private
    try:
        check_destination(url, allow_private=allow)
    except ForbiddenDestination as exc:
        raise ApiError(
            422, f"webhook_url: {exc}", code="webhook_url_refused", param="webhook_url"
        ) from None
