"""A worker loop: claim jobs, run a handler on each with heartbeats, report the outcome."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError

from imagineer.jobs.models import Job, JobError, JobNotFound, JsonDict
from imagineer.jobs.store import JobStore

logger = logging.getLogger(__name__)


class JobContext:
    """What a handler can do while it runs: report progress and ask whether to stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._step: int | None = None
        self._total: int | None = None
        self._stop = threading.Event()

    def progress(self, step: int, total: int) -> None:
        """Record that step of total steps are done; sent with the next heartbeat."""
        if isinstance(step, bool) or isinstance(total, bool) or not 0 <= step <= total:
            raise ValueError(f"progress({step!r}, {total!r}): use 0 <= step <= total")
        with self._lock:
            self._step, self._total = step, total

    def cancelled(self) -> bool:
        """True once the job should stop: a cancel was requested or the job was taken over."""
        return self._stop.is_set()

    def _progress(self) -> tuple[int | None, int | None]:
        with self._lock:
            return self._step, self._total

    def _request_stop(self) -> None:
        self._stop.set()


Handler = Callable[[Job, JobContext], JsonDict]


class _Heartbeat:
    """A thread that tells the store the job is alive while the handler runs."""

    def __init__(
        self, store: JobStore, job: Job, worker_id: str, ctx: JobContext, interval: float
    ) -> None:
        self._store, self._job, self._worker_id = store, job, worker_id
        self._ctx, self._interval = ctx, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            step, total = self._ctx._progress()
            try:
                keep_going = self._store.heartbeat(self._job.id, self._worker_id, step, total)
            except JobError as exc:
                logger.warning("job %s: %s; stopping it", self._job.id, exc)
                self._ctx._request_stop()
                return
            except SQLAlchemyError as exc:
                # The database may be back by the next beat; the job is not lost until stale.
                logger.warning("job %s: heartbeat failed: %s", self._job.id, exc)
                continue
            if not keep_going:
                self._ctx._request_stop()


class Worker:
    """Runs queued jobs through a handler, one at a time, until told to stop.

    The handler gets the Job and a JobContext and returns the result as a dict of JSON
    values; an exception fails the attempt with its message. A heartbeat thread keeps the
    job alive meanwhile. Jobs whose worker went silent for stale_after_s (default: the
    larger of 30 s and ten heartbeats) are requeued when the worker starts and when idle.
    """

    def __init__(
        self,
        store: JobStore,
        handler: Handler,
        *,
        worker_id: str,
        kinds: Sequence[str] | None = None,
        poll_interval: float = 0.2,
        heartbeat_interval: float = 1.0,
        stale_after_s: float | None = None,
    ) -> None:
        if not isinstance(worker_id, str) or not worker_id.strip():
            raise ValueError(f"worker_id={worker_id!r}: pass a non-empty string")
        for name, value in (
            ("poll_interval", poll_interval),
            ("heartbeat_interval", heartbeat_interval),
        ):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r}: use a number of seconds > 0")
        # A job is stale when its worker missed many beats in a row: long enough never to
        # take a job from a live but busy worker.
        stale = max(30.0, 10 * heartbeat_interval) if stale_after_s is None else stale_after_s
        if not math.isfinite(stale) or stale <= 2 * heartbeat_interval:
            raise ValueError(
                f"stale_after_s={stale!r}: use more than twice heartbeat_interval "
                f"({heartbeat_interval!r}) so live workers are not mistaken for dead ones"
            )
        self.worker_id = worker_id
        self._store, self._handler = store, handler
        self._kinds = None if kinds is None else list(kinds)
        self._poll_interval, self._heartbeat_interval = poll_interval, heartbeat_interval
        self._stale_after_s = stale

    def run(self, stop_event: threading.Event) -> None:
        """Work until stop_event is set; a job under way is finished before returning."""
        self._recover()
        last_sweep = time.monotonic()
        while not stop_event.is_set():
            try:
                job = self._store.claim(self.worker_id, kinds=self._kinds)
            except SQLAlchemyError as exc:
                logger.warning("worker %s: claim failed: %s", self.worker_id, exc)
                job = None
            if job is not None:
                try:
                    self._process(job)
                except JobNotFound:
                    logger.warning("job %s was deleted while it ran", job.id)
                continue
            # Idle: also rescue jobs of workers that died after this one started.
            if time.monotonic() - last_sweep >= self._stale_after_s / 2:
                self._recover()
                last_sweep = time.monotonic()
            stop_event.wait(self._poll_interval)

    def run_once(self) -> Job | None:
        """Claim and run one job; the job as it ended, or None when nothing was queued."""
        job = self._store.claim(self.worker_id, kinds=self._kinds)
        return None if job is None else self._process(job)

    def _recover(self) -> None:
        try:
            count = self._store.requeue_stale(self._stale_after_s)
        except SQLAlchemyError as exc:
            logger.warning("worker %s: requeue_stale failed: %s", self.worker_id, exc)
            return
        if count:
            logger.info("worker %s: recovered %d stale job(s)", self.worker_id, count)

    def _process(self, job: Job) -> Job:
        ctx = JobContext()
        result: object = None
        reason: str | None = None
        with _Heartbeat(self._store, job, self.worker_id, ctx, self._heartbeat_interval):
            try:
                result = self._handler(job, ctx)
            except Exception as exc:
                logger.exception("job %s (%s) failed", job.id, job.kind)
                reason = str(exc) or type(exc).__name__
        return self._report(job, ctx, result, reason)

    def _report(self, job: Job, ctx: JobContext, result: object, reason: str | None) -> Job:
        try:
            if ctx.cancelled():
                return self._store.mark_cancelled(job.id, self.worker_id)
            if reason is not None:
                return self._store.fail(job.id, self.worker_id, reason)
            if not isinstance(result, dict):
                why = f"the handler returned {type(result).__name__}, not a dict of JSON values"
                return self._store.fail(job.id, self.worker_id, why)
            try:
                return self._store.complete(job.id, self.worker_id, result)
            except ValueError as exc:
                return self._store.fail(job.id, self.worker_id, f"the handler's {exc}")
        except JobError as exc:
            # Another worker took the job over (or it was cancelled): its record stands.
            logger.warning("job %s: outcome dropped: %s", job.id, exc)
            return self._store.get(job.id)
