"""A worker loop: claim jobs (alone or in batches), run them with heartbeats, report outcomes."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError

from imagineer.jobs.models import Job, JobError, JobNotFound, JobState, JsonDict
from imagineer.jobs.store import JobStore

logger = logging.getLogger(__name__)

SHUTDOWN_REASON = "the worker shut down while the job ran; it was put back in the queue"


class JobContext:
    """What a handler can do while it runs: report progress and ask whether to stop."""

    def __init__(self, attempt: int = 1) -> None:
        self.attempt = attempt  # which attempt of the job this is (1 for the first)
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
# A batch handler runs compatible jobs together; item i answers job i: its result or the
# exception that failed it (one job's bad prompt must not fail its batch mates).
BatchHandler = Callable[[Sequence[Job], Sequence[JobContext]], Sequence[JsonDict | Exception]]
JobHook = Callable[[Job, JsonDict | None], None]


class _Heartbeat:
    """A thread that tells the store the jobs are alive while the handler runs."""

    def __init__(
        self,
        store: JobStore,
        jobs: Sequence[Job],
        ctxs: Sequence[JobContext],
        worker_id: str,
        interval: float,
    ) -> None:
        self._store, self._jobs, self._ctxs = store, jobs, ctxs
        self._worker_id, self._interval = worker_id, interval
        self._done = threading.Event()
        name = f"heartbeat-{jobs[0].id}" + (f"+{len(jobs) - 1}" if len(jobs) > 1 else "")
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

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
            for job, ctx in zip(self._jobs, self._ctxs, strict=True):
                if not ctx.cancelled():
                    self._beat(job, ctx)

    def _beat(self, job: Job, ctx: JobContext) -> None:
        step, total = ctx._progress()
        try:
            keep_going = self._store.heartbeat(
                job.id, self._worker_id, step, total, attempt=job.attempts
            )
        except JobError as exc:
            logger.warning("job %s: %s; stopping it", job.id, exc)
            ctx._request_stop()
            return
        except SQLAlchemyError as exc:
            # The database may be back by the next beat; the job is not lost until stale.
            logger.warning("job %s: heartbeat failed: %s", job.id, exc)
            return
        if not keep_going:
            ctx._request_stop()


class Worker:
    """Runs queued jobs through a handler until told to stop.

    The handler gets the Job and a JobContext and returns the result as a dict of JSON
    values; an exception fails the attempt with its message. A heartbeat thread keeps the
    job alive meanwhile. Jobs whose worker went silent for stale_after_s (default: the
    larger of 30 s and ten heartbeats) are requeued when the worker starts and every
    stale_after_s / 2 after.

    With a batch_handler and max_batch > 1, the worker takes the next job and up to
    max_batch - 1 queued jobs with the same batch key, waiting up to batch_window_s for
    more to arrive when the batch is not full, and runs them through batch_handler at once.

    Results are reported keyed by job and attempt, so an attempt that was taken over never
    reports. on_discard(job, result) hears of each result dropped that way (to delete its
    files); on_abandoned(job, None) of each job that ended because its worker died.
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
        batch_handler: BatchHandler | None = None,
        max_batch: int = 1,
        batch_window_s: float = 0.05,
        on_discard: JobHook | None = None,
        on_abandoned: JobHook | None = None,
    ) -> None:
        if not isinstance(worker_id, str) or not worker_id.strip():
            raise ValueError(f"worker_id={worker_id!r}: pass a non-empty string")
        for name, value in (
            ("poll_interval", poll_interval),
            ("heartbeat_interval", heartbeat_interval),
        ):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r}: use a number of seconds > 0")
        if not math.isfinite(batch_window_s) or batch_window_s < 0:
            raise ValueError(f"batch_window_s={batch_window_s!r}: use a number of seconds >= 0")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch={max_batch!r}: use a whole number >= 1")
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
        self._batch_handler = batch_handler
        self._max_batch = max_batch if batch_handler is not None else 1
        self._window_s = batch_window_s
        self._kinds = None if kinds is None else list(kinds)
        self._poll_interval, self._heartbeat_interval = poll_interval, heartbeat_interval
        self._stale_after_s = stale
        self._on_discard, self._on_abandoned = on_discard, on_abandoned
        self._lock = threading.Lock()
        self._current: list[Job] = []
        self._wake = threading.Event()

    @property
    def current(self) -> list[Job]:
        """The jobs being run right now, as claimed."""
        with self._lock:
            return list(self._current)

    def run(self, stop_event: threading.Event) -> None:
        """Work until stop_event is set; jobs under way are finished before returning."""
        self._recover()
        last_sweep = time.monotonic()
        while not stop_event.is_set():
            try:
                jobs = self._claim(stop_event)
            except SQLAlchemyError as exc:
                logger.warning("worker %s: claim failed: %s", self.worker_id, exc)
                jobs = []
            if jobs:
                self._process(jobs)
            # Rescue jobs of workers that died after this one started (busy or not: a
            # long queue must not hide a dead worker's jobs until it drains).
            if time.monotonic() - last_sweep >= self._stale_after_s / 2:
                self._recover()
                last_sweep = time.monotonic()
            if not jobs and self._wake.wait(self._poll_interval):
                self._wake.clear()

    def wake(self) -> None:
        """Look for queued jobs now rather than at the next poll: a process that submits to
        its own worker calls this, so the worker can poll rarely and still start at once."""
        self._wake.set()

    def run_once(self) -> Job | None:
        """Claim and run one job (or batch); the first job as it ended, or None when idle."""
        ended = self.run_batch_once()
        return ended[0] if ended else None

    def run_batch_once(self) -> list[Job]:
        """Claim and run one batch (one job without a batch handler); the jobs as they ended."""
        jobs = self._claim(threading.Event())
        return self._process(jobs) if jobs else []

    def _claim(self, stop_event: threading.Event) -> list[Job]:
        if self._max_batch == 1:
            job = self._store.claim(self.worker_id, kinds=self._kinds)
            return [] if job is None else [job]
        jobs = self._store.claim_batch(self.worker_id, max_jobs=self._max_batch, kinds=self._kinds)
        key = jobs[0].batch_key if jobs else ""
        if key and len(jobs) < self._max_batch and self._window_s > 0:
            # Dynamic batching: a short wait lets jobs submitted at about the same time join.
            stop_event.wait(self._window_s)
            jobs += self._store.claim_mates(
                self.worker_id, key, max_jobs=self._max_batch - len(jobs), kinds=self._kinds
            )
        return jobs

    def _recover(self) -> None:
        try:
            recovered = self._store.recover_stale(self._stale_after_s)
        except SQLAlchemyError as exc:
            logger.warning("worker %s: recovering stale jobs failed: %s", self.worker_id, exc)
            return
        if recovered:
            logger.info("worker %s: recovered %d stale job(s)", self.worker_id, len(recovered))
        for job in recovered:
            if job.state.finished and self._on_abandoned is not None:
                self._hook(self._on_abandoned, job, None)

    def _process(self, jobs: list[Job]) -> list[Job]:
        ctxs = [JobContext(job.attempts) for job in jobs]
        with self._lock:
            self._current = list(jobs)
        try:
            with _Heartbeat(self._store, jobs, ctxs, self.worker_id, self._heartbeat_interval):
                outcomes = self._run_handler(jobs, ctxs)
            ended = []
            for job, ctx, outcome in zip(jobs, ctxs, outcomes, strict=True):
                try:
                    ended.append(self._report(job, ctx, outcome))
                except JobNotFound:
                    logger.warning("job %s was deleted while it ran", job.id)
            return ended
        finally:
            with self._lock:
                self._current = []

    def _run_handler(
        self, jobs: Sequence[Job], ctxs: Sequence[JobContext]
    ) -> list[object | Exception]:
        if len(jobs) > 1 and self._batch_handler is not None:
            try:
                outcomes: list[object | Exception] = list(self._batch_handler(jobs, ctxs))
            except Exception as exc:
                logger.exception("batch of %d job(s) failed", len(jobs))
                return [exc for _ in jobs]
            if len(outcomes) != len(jobs):
                why = RuntimeError(f"the batch handler answered {len(outcomes)} of {len(jobs)}")
                return [why for _ in jobs]
            return outcomes
        results: list[object | Exception] = []
        for job, ctx in zip(jobs, ctxs, strict=True):
            try:
                results.append(self._handler(job, ctx))
            except Exception as exc:
                logger.exception("job %s (%s) failed", job.id, job.kind)
                results.append(exc)
        return results

    def _report(self, job: Job, ctx: JobContext, outcome: object) -> Job:
        result = outcome if isinstance(outcome, dict) else None
        attempt = job.attempts
        try:
            if ctx.cancelled():
                ended = self._store.mark_cancelled(job.id, self.worker_id, attempt=attempt)
                self._discard(job, result)
                return ended
            if isinstance(outcome, Exception):
                reason = str(outcome) or type(outcome).__name__
                return self._store.fail(job.id, self.worker_id, reason, attempt=attempt)
            if result is None:
                why = f"the handler returned {type(outcome).__name__}, not a dict of JSON values"
                return self._store.fail(job.id, self.worker_id, why, attempt=attempt)
            try:
                return self._store.complete(job.id, self.worker_id, result, attempt=attempt)
            except ValueError as exc:
                self._discard(job, result)
                return self._store.fail(
                    job.id, self.worker_id, f"the handler's {exc}", attempt=attempt
                )
        except JobError as exc:
            # Another worker took the job over (or it was cancelled): its record stands.
            logger.warning("job %s: outcome dropped: %s", job.id, exc)
            self._discard(job, result)
            return self._store.get(job.id)

    def _discard(self, job: Job, result: JsonDict | None) -> None:
        if result is not None and self._on_discard is not None:
            self._hook(self._on_discard, job, result)

    def _hook(self, hook: JobHook, job: Job, result: JsonDict | None) -> None:
        try:
            hook(job, result)
        except Exception:  # cleaning up must never stop the worker
            logger.exception("job %s: clean-up hook failed", job.id)


class WorkerThread:
    """A Worker in a daemon thread, with a graceful stop: finish the jobs under way within a
    grace period, else put them back in the queue for another worker."""

    def __init__(self, worker: Worker, *, name: str | None = None) -> None:
        self.worker = worker
        self._store = worker._store
        self._name = name or worker.worker_id
        self._stop = threading.Event()
        self._thread = self._new_thread()

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(
            target=self.worker.run, args=(self._stop,), name=self._name, daemon=True
        )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        """Start working (again, after a stop: an app's lifespan may run more than once)."""
        if self._thread.is_alive():
            raise RuntimeError(f"worker {self.worker.worker_id!r} is already running")
        if self._thread.ident is not None:  # ran before: a thread starts only once
            self._stop = threading.Event()
            self._thread = self._new_thread()
        self._thread.start()

    def stop(self, grace_s: float, reason: str = SHUTDOWN_REASON) -> list[str]:
        """Take no new jobs; wait up to grace_s for the ones under way, else requeue them.

        Returns the ids of the jobs put back in the queue (without spending an attempt). A
        requeued job's thread notices at its next step (its heartbeat is refused) and stops;
        its outcome is dropped.
        """
        self._stop.set()
        self.worker.wake()  # out of its idle wait
        self._thread.join(grace_s)
        if not self._thread.is_alive():
            return []
        requeued = []
        for job in self.worker.current:
            try:
                after = self._store.release(
                    job.id, self.worker.worker_id, reason, attempt=job.attempts
                )
            except JobError as exc:  # it finished or was taken over meanwhile
                logger.info("job %s not requeued: %s", job.id, exc)
                continue
            if after.state is JobState.QUEUED:
                requeued.append(job.id)
        return requeued

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end; True when it has."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
