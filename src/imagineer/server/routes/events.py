"""/v1/jobs/{id}/events: Server-Sent Events of a job's state, steps and previews until it ends."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from imagineer.jobs import Job, JobNotFound, JobState
from imagineer.server.deps import PrincipalDep, ServerState, StateDep
from imagineer.server.schemas import JobPublic, PreviewEvent, ProgressEvent, fraction
from imagineer.server.signals import wait_for_change
from imagineer.service.previews import Preview, read_preview

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
# A queued job changes only when a worker claims it: this process's worker wakes the stream
# at once, another process's claim is seen within this (a crowd of waiting streams reads the
# store 4x less often than running ones do).
QUEUED_POLL_S = 1.0
FileKey = tuple[int, int] | None  # (mtime in ns, size) of the preview last sent


def sse(event: str, data: str) -> str:
    """One event in the text/event-stream format (data is one line of JSON)."""
    return f"event: {event}\ndata: {data}\n\n"


@router.get("/{job_id}/events", response_class=StreamingResponse)
def job_events(job_id: str, state: StateDep, principal: PrincipalDep) -> StreamingResponse:
    """`state` events ({id, state, step, total}) whenever they change, `preview` events
    ({id, step, total, image}) with a small PNG of the image in progress every few steps
    while the job runs, then one `end` event with the whole job once it is done, failed or
    cancelled."""
    job = state.service.job(job_id, user=principal.user_id)  # 404 before the stream starts
    return StreamingResponse(
        _stream(state, job),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(state: ServerState, job: Job) -> AsyncIterator[str]:
    with state.signals.watching([job.id]) as changed:
        async for event in _events(state, job, changed):
            yield event


async def _events(state: ServerState, job: Job, changed: asyncio.Event) -> AsyncIterator[str]:
    """The stream's events: it reads the job again when this process changes it (its worker's
    progress, the end) or, for jobs other processes run, every events_poll_s while it runs
    (QUEUED_POLL_S while it waits)."""
    last: tuple[object, ...] | None = None
    sent: FileKey = None
    preview_path = state.service.preview_path(job)
    quiet_since = time.monotonic()
    while True:
        now = (job.state, job.progress_step, job.progress_total)
        if now != last:
            event = ProgressEvent(
                id=job.id,
                state=job.state.value,
                step=job.progress_step,
                total=job.progress_total,
                fraction=fraction(job.progress_step, job.progress_total),
            )
            yield sse("state", event.model_dump_json())
            last, quiet_since = now, time.monotonic()
        if job.state is JobState.RUNNING:
            preview, sent = await run_in_threadpool(_new_preview, preview_path, sent)
            if preview is not None:
                yield sse("preview", _preview_event(job.id, preview).model_dump_json())
                quiet_since = time.monotonic()
        if time.monotonic() - quiet_since >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        if job.state.finished:
            yield sse("end", JobPublic.from_job(job).model_dump_json())
            return
        poll_s = state.options.events_poll_s
        if job.state is not JobState.RUNNING:
            poll_s = max(poll_s, QUEUED_POLL_S)
        await wait_for_change(changed, poll_s)
        try:
            job = await run_in_threadpool(state.store.get, job.id, user_id=job.user_id)
        except JobNotFound:
            yield sse(
                "deleted",
                ProgressEvent(id=job.id, state="deleted", step=None, total=None).model_dump_json(),
            )
            return


def _new_preview(path: Path, sent: FileKey) -> tuple[Preview | None, FileKey]:
    """The preview at `path` when it changed since the one sent (whose key is `sent`)."""
    try:
        stat = path.stat()
    except OSError:  # none yet, or the job just ended and removed it
        return None, sent
    key = (stat.st_mtime_ns, stat.st_size)
    if key == sent:
        return None, sent
    return read_preview(path), key


def _preview_event(job_id: str, preview: Preview) -> PreviewEvent:
    image = "data:image/png;base64," + base64.b64encode(preview.png).decode("ascii")
    return PreviewEvent(id=job_id, step=preview.step, total=preview.total, image=image)
