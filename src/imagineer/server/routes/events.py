"""/v1/jobs/{id}/events: Server-Sent Events of a job's state and steps until it ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from imagineer.jobs import Job, JobNotFound
from imagineer.server.deps import PrincipalDep, ServerState, StateDep
from imagineer.server.schemas import JobPublic, ProgressEvent

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream


def sse(event: str, data: str) -> str:
    """One event in the text/event-stream format (data is one line of JSON)."""
    return f"event: {event}\ndata: {data}\n\n"


@router.get("/{job_id}/events", response_class=StreamingResponse)
def job_events(job_id: str, state: StateDep, principal: PrincipalDep) -> StreamingResponse:
    """`state` events ({id, state, step, total}) whenever they change, then one `end` event
    with the whole job once it is done, failed or cancelled."""
    job = state.service.job(job_id, user=principal.user_id)  # 404 before the stream starts
    return StreamingResponse(
        _stream(state, job),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(state: ServerState, job: Job) -> AsyncIterator[str]:
    last: tuple[object, ...] | None = None
    quiet_since = time.monotonic()
    while True:
        now = (job.state, job.progress_step, job.progress_total)
        if now != last:
            event = ProgressEvent(
                id=job.id, state=job.state.value, step=job.progress_step, total=job.progress_total
            )
            yield sse("state", event.model_dump_json())
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        if job.state.finished:
            yield sse("end", JobPublic.from_job(job).model_dump_json())
            return
        await anyio.sleep(state.options.events_poll_s)
        try:
            job = await run_in_threadpool(state.store.get, job.id, user_id=job.user_id)
        except JobNotFound:
            yield sse(
                "deleted",
                ProgressEvent(id=job.id, state="deleted", step=None, total=None).model_dump_json(),
            )
            return
