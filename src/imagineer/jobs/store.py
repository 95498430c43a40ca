"""The durable job store: submit, claim, report and recover jobs in SQLite or PostgreSQL."""

from __future__ import annotations

import builtins
import json
import logging
import math
import random
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, create_engine, event, func, inspect, or_, select, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from imagineer.jobs.models import (
    ADDED_JOB_COLUMNS,
    Base,
    InvalidTransition,
    Job,
    JobNotFound,
    JobRow,
    JobState,
    JsonDict,
    NotJobOwner,
    Refusal,
    RefusalRow,
    RetryPolicy,
    StaleAttempt,
    WebhookDelivery,
    WebhookRow,
    WebhookState,
)

logger = logging.getLogger(__name__)

_WRITE = "imagineer_write"  # execution option: this transaction will write (SQLite: lock at BEGIN)
_SQLITE_BUSY_TIMEOUT_MS = 30_000
_MAX_ID_LEN = 128
_DDL_LOCK_KEY = 0x696D_6167_6A6F_6273  # "imagjobs": the advisory lock taken to create tables
_MAX_URL_LEN = 2048
_WEBHOOK_LOG_KEPT = 20  # attempts kept in a delivery's log (the count goes on)
WEBHOOK_RETRY = RetryPolicy(base_s=5.0, factor=3.0, cap_s=3600.0)  # 5 s, 15 s, 45 s, … 1 h
WEBHOOK_ATTEMPTS = 10  # about 3.5 hours of retries before a delivery is given up


def default_database_url(data_dir: Path) -> str:
    """The SQLAlchemy URL of the default store: the SQLite file jobs.sqlite3 in data_dir."""
    path = Path(data_dir).expanduser() / "jobs.sqlite3"
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class JobStore:
    """Jobs, refusals and webhook deliveries in one database; each method is one short
    transaction.

    `retry` sets the wait before a failed job's next attempt (and one whose worker died);
    `webhook_retry` the wait between delivery attempts of a webhook.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
        retry: RetryPolicy | None = None,
        webhook_retry: RetryPolicy = WEBHOOK_RETRY,
        webhook_attempts: int = WEBHOOK_ATTEMPTS,
    ) -> None:
        self._engine = _open_engine(url)
        self._clock = clock
        self.retry = RetryPolicy() if retry is None else retry
        self.webhook_retry = webhook_retry
        self._webhook_attempts = _check_int("webhook_attempts", webhook_attempts, minimum=1)
        self._random = random.Random()
        _create_tables(self._engine)
        self._reads = sessionmaker(self._engine, expire_on_commit=False)
        writer = self._engine.execution_options(**{_WRITE: True})
        self._writes = sessionmaker(writer, expire_on_commit=False)
        self._listeners: builtins.list[Callable[[str], None]] = []

    @property
    def dialect(self) -> str:
        """The backend's name: "sqlite" or "postgresql"."""
        return self._engine.dialect.name

    def close(self) -> None:
        """Release all connections; the store cannot be used afterwards."""
        self._engine.dispose()

    def watch(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call listener(job_id) after each change this object commits to a job that was
        queued (its claim, progress, end, requeue or cancel); returns the call that stops it.

        Lets a server wake what waits on a job instead of polling; changes made through
        other JobStore objects (other worker processes) are not seen.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _changed(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            for listener in list(self._listeners):
                try:
                    listener(job_id)
                except Exception:  # a waiter's failure must not fail the store's caller
                    logger.exception("job %s: a change listener failed", job_id)

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- callers: submit, read, cancel, delete ----------------------------------------------

    def submit(
        self,
        kind: str,
        payload: JsonDict,
        *,
        user_id: str = "local",
        priority: int = 0,
        batch_key: str = "",
        idempotency_key: str | None = None,
        max_attempts: int = 3,
        webhook_url: str | None = None,
    ) -> Job:
        """Queue a job; a repeated idempotency_key from the same user returns the first job.

        With webhook_url, an event is posted there once the job is done, failed or cancelled.
        """
        row = JobRow(
            id=secrets.token_urlsafe(16),
            kind=_check_name("kind", kind, 32),
            state=JobState.QUEUED.value,
            payload=_check_json("payload", payload),
            result=None,
            error=None,
            user_id=_check_name("user_id", user_id, _MAX_ID_LEN),
            priority=_check_int("priority", priority),
            batch_key=_check_text("batch_key", batch_key, 256),
            idempotency_key=_check_optional_name("idempotency_key", idempotency_key, 256),
            attempts=0,
            max_attempts=_check_int("max_attempts", max_attempts, minimum=1),
            cancel_requested=False,
            created_at=self._clock(),
            webhook_url=_check_optional_name("webhook_url", webhook_url, _MAX_URL_LEN),
        )
        if idempotency_key is not None:
            existing = self._find_idempotent(user_id, idempotency_key)
            if existing is not None:
                return existing
        try:
            with self._write() as session:
                session.add(row)
        except IntegrityError:
            # Another submit with the same key won the race: answer with its job.
            existing = None
            if idempotency_key is not None:
                existing = self._find_idempotent(user_id, idempotency_key)
            if existing is None:
                raise
            return existing
        return row.to_job()

    def get(self, job_id: str, *, user_id: str | None = None) -> Job:
        """The job with this id; with user_id, another user's job reads as missing."""
        with self._reads() as session:
            return _find_row(session, job_id, user_id).to_job()

    def list(
        self,
        *,
        user_id: str | None = None,
        state: JobState | str | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> builtins.list[Job]:
        """Jobs newest first; page on with before=<the last job's created_at>."""
        stmt = select(JobRow)
        if user_id is not None:
            stmt = stmt.where(JobRow.user_id == user_id)
        if state is not None:
            stmt = stmt.where(JobRow.state == _check_state(state).value)
        if before is not None:
            stmt = stmt.where(JobRow.created_at < _check_aware("before", before))
        limit = _check_int("limit", limit, minimum=1)
        stmt = stmt.order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
        with self._reads() as session:
            return [row.to_job() for row in session.scalars(stmt)]

    def cancel(self, job_id: str, *, user_id: str | None = None) -> Job:
        """Cancel a queued job at once; ask the worker of a running job to stop at its next step."""
        with self._write() as session:
            row = _find_row(session, job_id, user_id, lock=True)
            state = JobState(row.state)
            if state is JobState.QUEUED:
                self._finish(session, row, JobState.CANCELLED)
            elif state is JobState.RUNNING:
                row.cancel_requested = True
            elif state is not JobState.CANCELLED:
                raise InvalidTransition(job_id, state.value, JobState.CANCELLED.value)
        self._changed([job_id])
        return row.to_job()

    def delete(self, job_id: str, *, user_id: str | None = None) -> None:
        """Forget a job that is not running (cancel a running one first)."""
        with self._write() as session:
            row = _find_row(session, job_id, user_id, lock=True)
            if row.state == JobState.RUNNING.value:
                raise InvalidTransition(job_id, row.state, "deleted", "cancel it first")
            session.delete(row)

    # --- workers: claim, heartbeat, report --------------------------------------------------

    def claim(self, worker_id: str, *, kinds: Sequence[str] | None = None) -> Job | None:
        """Take the oldest highest-priority queued job, or None; no two workers get the same."""
        _check_name("worker_id", worker_id, _MAX_ID_LEN)
        queued = _queued(kinds, self._clock()).limit(1).with_for_update(skip_locked=True)
        with self._write() as session:
            row = session.scalars(queued).first()
            if row is None:
                return None
            self._start(row, worker_id)
        self._changed([row.id])
        return row.to_job()

    def claim_batch(
        self, worker_id: str, *, max_jobs: int, kinds: Sequence[str] | None = None
    ) -> builtins.list[Job]:
        """Take up to max_jobs queued jobs sharing the batch_key of the job that is next in line.

        A job with an empty batch_key is never batched with others.
        """
        _check_name("worker_id", worker_id, _MAX_ID_LEN)
        max_jobs = _check_int("max_jobs", max_jobs, minimum=1)
        now = self._clock()
        with self._write() as session:
            head = session.scalars(_queued(kinds, now).limit(1).with_for_update(skip_locked=True))
            rows = list(head)
            if rows and rows[0].batch_key and max_jobs > 1:
                head_row = rows[0]
                rows.extend(
                    self._mates(session, head_row.batch_key, max_jobs - 1, kinds, now, head_row.id)
                )
            for row in rows:
                self._start(row, worker_id)
        self._changed(row.id for row in rows)
        return [row.to_job() for row in rows]

    def claim_mates(
        self,
        worker_id: str,
        batch_key: str,
        *,
        max_jobs: int,
        kinds: Sequence[str] | None = None,
    ) -> builtins.list[Job]:
        """Take up to max_jobs more queued jobs with this (non-empty) batch_key."""
        _check_name("worker_id", worker_id, _MAX_ID_LEN)
        _check_name("batch_key", batch_key, 256)
        max_jobs = _check_int("max_jobs", max_jobs, minimum=0)
        if max_jobs == 0:
            return []
        with self._write() as session:
            rows = self._mates(session, batch_key, max_jobs, kinds, self._clock())
            for row in rows:
                self._start(row, worker_id)
        self._changed(row.id for row in rows)
        return [row.to_job() for row in rows]

    def _mates(
        self,
        session: Session,
        batch_key: str,
        limit: int,
        kinds: Sequence[str] | None,
        now: datetime,
        exclude: str = "",
    ) -> builtins.list[JobRow]:
        mates = (
            _queued(kinds, now)
            .where(JobRow.batch_key == batch_key, JobRow.id != exclude)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(session.scalars(mates))

    def heartbeat(
        self,
        job_id: str,
        worker_id: str,
        step: int | None = None,
        total: int | None = None,
        *,
        attempt: int | None = None,
    ) -> bool:
        """Record that the worker is alive (and its progress); False when a cancel was requested.

        With attempt, an earlier attempt of a job this worker holds again is refused.
        """
        with self._write() as session:
            row = _held_row(session, job_id, worker_id, JobState.RUNNING, attempt)
            row.heartbeat_at = self._clock()
            if step is not None:
                row.progress_step = _check_int("step", step, minimum=0)
            if total is not None:
                row.progress_total = _check_int("total", total, minimum=0)
            keep_going = not row.cancel_requested
        self._changed([job_id])
        return keep_going

    def complete(
        self, job_id: str, worker_id: str, result: JsonDict, *, attempt: int | None = None
    ) -> Job:
        """Finish a running job held by this worker with its result.

        Results are keyed by job and attempt: with attempt, the result of an attempt that is
        over (the job was requeued and claimed again) is refused with StaleAttempt, so a job
        never gets two results.
        """
        checked = _check_json("result", result)
        with self._write() as session:
            row = _held_row(session, job_id, worker_id, JobState.DONE, attempt)
            row.result = checked
            row.error = None
            self._finish(session, row, JobState.DONE)
        self._changed([job_id])
        return row.to_job()

    def fail(self, job_id: str, worker_id: str, reason: str, *, attempt: int | None = None) -> Job:
        """Report a failed attempt: requeue (after the retry wait) while attempts remain, else
        fail with the reason."""
        reason = _check_text("reason", reason, None) or "failed without a message"
        with self._write() as session:
            row = _held_row(session, job_id, worker_id, JobState.FAILED, attempt)
            row.error = reason
            if row.cancel_requested:
                self._finish(session, row, JobState.CANCELLED)
            elif row.attempts < row.max_attempts:
                self._retry_later(row)
            else:
                self._finish(session, row, JobState.FAILED)
        self._changed([job_id])
        return row.to_job()

    def release(
        self, job_id: str, worker_id: str, reason: str, *, attempt: int | None = None
    ) -> Job:
        """Put a running job back in the queue at once, without spending an attempt: its
        worker is shutting down, not failing (the attempt interrupted is given back)."""
        reason = _check_text("reason", reason, None) or "released without a message"
        with self._write() as session:
            row = _held_row(session, job_id, worker_id, JobState.QUEUED, attempt)
            row.error = reason
            if row.cancel_requested:
                self._finish(session, row, JobState.CANCELLED)
            else:
                # Attempts only grow, so a late report of the interrupted one stays refusable.
                row.max_attempts += 1
                _requeue(row)
        self._changed([job_id])
        return row.to_job()

    def mark_cancelled(self, job_id: str, worker_id: str, *, attempt: int | None = None) -> Job:
        """The worker stopped a running job it holds because a cancel was requested."""
        with self._write() as session:
            row = _held_row(session, job_id, worker_id, JobState.CANCELLED, attempt)
            self._finish(session, row, JobState.CANCELLED)
        self._changed([job_id])
        return row.to_job()

    def requeue_stale(self, older_than_s: float) -> int:
        """Recover running jobs whose worker sent no heartbeat for older_than_s seconds.

        Each goes back to the queue (after the retry wait); one out of attempts fails and one
        whose cancel was requested is cancelled. Returns how many stale jobs were recovered.
        """
        return len(self.recover_stale(older_than_s))

    def recover_stale(self, older_than_s: float) -> builtins.list[Job]:
        """requeue_stale, answering the recovered jobs as they are now."""
        if not math.isfinite(older_than_s) or older_than_s < 0:
            raise ValueError(f"older_than_s={older_than_s!r}: use a number of seconds >= 0")
        cutoff = self._clock() - timedelta(seconds=older_than_s)
        stale = (
            select(JobRow)
            .where(JobRow.state == JobState.RUNNING.value, JobRow.heartbeat_at < cutoff)
            .with_for_update(skip_locked=True)
        )
        with self._write() as session:
            rows = list(session.scalars(stale))
            for row in rows:
                silent = (
                    f"worker {row.worker_id!r} stopped sending heartbeats "
                    f"on attempt {row.attempts} of {row.max_attempts}"
                )
                if row.cancel_requested:
                    self._finish(session, row, JobState.CANCELLED)
                elif row.attempts < row.max_attempts:
                    row.error = silent
                    self._retry_later(row)
                else:
                    row.error = silent
                    self._finish(session, row, JobState.FAILED)
        self._changed(row.id for row in rows)
        return [row.to_job() for row in rows]

    # --- webhooks: an outbox written with each job's end ------------------------------------

    def claim_webhooks(
        self, *, limit: int = 10, lease_s: float = 60.0
    ) -> builtins.list[WebhookDelivery]:
        """Take up to limit pending deliveries that are due; each is hidden from other
        dispatchers for lease_s seconds, enough for one attempt (then it is due again)."""
        limit = _check_int("limit", limit, minimum=1)
        if not math.isfinite(lease_s) or lease_s <= 0:
            raise ValueError(f"lease_s={lease_s!r}: use a number of seconds > 0")
        now = self._clock()
        due = (
            select(WebhookRow)
            .where(
                WebhookRow.state == WebhookState.PENDING.value,
                WebhookRow.next_attempt_at <= now,
            )
            .order_by(WebhookRow.next_attempt_at, WebhookRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as session:
            rows = list(session.scalars(due))
            for row in rows:
                row.next_attempt_at = now + timedelta(seconds=lease_s)
        return [row.to_delivery() for row in rows]

    def record_webhook_attempt(
        self,
        delivery_id: str,
        *,
        delivered: bool,
        status: int | None,
        error: str | None,
        duration_s: float,
        body: str | None = None,
    ) -> WebhookDelivery:
        """Log one delivery attempt: delivered, or retried after a growing wait until
        the attempts run out (then failed). body fixes what later attempts send."""
        now = self._clock()
        with self._write() as session:
            row = session.get(WebhookRow, delivery_id, with_for_update=True)
            if row is None:
                raise LookupError(f"no webhook delivery with id {delivery_id!r}")
            if row.state != WebhookState.PENDING.value:
                return row.to_delivery()  # another dispatcher finished it after our lease ran out
            if body is not None and row.body is None:
                row.body = body
            row.attempts += 1
            row.last_status, row.last_error = status, None if delivered else error
            entry = {"at": now.isoformat(), "status": status, "error": error}
            row.log = [*(row.log or []), {**entry, "duration_s": round(duration_s, 4)}][
                -_WEBHOOK_LOG_KEPT:
            ]
            if delivered:
                row.state, row.delivered_at = WebhookState.DELIVERED.value, now
            elif row.attempts >= row.max_attempts:
                row.state = WebhookState.FAILED.value
            else:
                wait = self.webhook_retry.delay_s(row.attempts, self._random.random())
                row.next_attempt_at = now + timedelta(seconds=wait)
        return row.to_delivery()

    def webhooks(
        self, *, job_id: str | None = None, user_id: str | None = None, limit: int = 100
    ) -> builtins.list[WebhookDelivery]:
        """Deliveries newest first, of one job and/or one user."""
        stmt = select(WebhookRow)
        if job_id is not None:
            stmt = stmt.where(WebhookRow.job_id == job_id)
        if user_id is not None:
            stmt = stmt.where(WebhookRow.user_id == user_id)
        limit = _check_int("limit", limit, minimum=1)
        stmt = stmt.order_by(WebhookRow.created_at.desc(), WebhookRow.id.desc()).limit(limit)
        with self._reads() as session:
            return [row.to_delivery() for row in session.scalars(stmt)]

    # --- the safety gate's audit log --------------------------------------------------------

    def record_refusal(
        self, *, user_id: str, category: str, normalized_prompt: str, message: str
    ) -> Refusal:
        """Keep one refused prompt for audit."""
        row = RefusalRow(
            id=secrets.token_urlsafe(16),
            user_id=_check_name("user_id", user_id, _MAX_ID_LEN),
            created_at=self._clock(),
            category=_check_name("category", category, 64),
            normalized_prompt=_check_text("normalized_prompt", normalized_prompt, None),
            message=_check_text("message", message, None),
        )
        with self._write() as session:
            session.add(row)
        return row.to_refusal()

    def count_refusals(self, user_id: str, since: datetime) -> int:
        """How many of this user's prompts were refused at or after since."""
        stmt = select(func.count(RefusalRow.id)).where(
            RefusalRow.user_id == user_id, RefusalRow.created_at >= _check_aware("since", since)
        )
        with self._reads() as session:
            return int(session.scalar(stmt) or 0)

    # --- internals --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._writes.begin() as session:
            yield session

    def _find_idempotent(self, user_id: str, key: str) -> Job | None:
        stmt = select(JobRow).where(JobRow.user_id == user_id, JobRow.idempotency_key == key)
        with self._reads() as session:
            row = session.scalars(stmt).first()
            return None if row is None else row.to_job()

    def _start(self, row: JobRow, worker_id: str) -> None:
        now = self._clock()
        row.state = JobState.RUNNING.value
        row.worker_id = worker_id
        row.attempts += 1
        row.started_at = now
        row.heartbeat_at = now
        row.progress_step = None
        row.progress_total = None

    def _finish(self, session: Session, row: JobRow, state: JobState) -> None:
        """End a job; its webhook delivery is queued in the same transaction (an outbox), so
        an end is never recorded without its event, nor an event sent for no end."""
        now = self._clock()
        row.state = state.value
        row.finished_at = now
        row.run_after = None
        if row.webhook_url:
            session.add(
                WebhookRow(
                    id=secrets.token_urlsafe(16),
                    job_id=row.id,
                    user_id=row.user_id,
                    url=row.webhook_url,
                    event=f"job.{state.value}",
                    state=WebhookState.PENDING.value,
                    body=None,
                    attempts=0,
                    max_attempts=self._webhook_attempts,
                    created_at=now,
                    next_attempt_at=now,
                    log=[],
                )
            )

    def _retry_later(self, row: JobRow) -> None:
        _requeue(row)
        wait = self.retry.delay_s(row.attempts, self._random.random())
        row.run_after = self._clock() + timedelta(seconds=wait) if wait > 0 else None


def _requeue(row: JobRow) -> None:
    row.state = JobState.QUEUED.value
    row.worker_id = None
    row.started_at = None
    row.heartbeat_at = None
    row.progress_step = None
    row.progress_total = None
    row.run_after = None


def _queued(kinds: Sequence[str] | None, now: datetime) -> Select[JobRow]:
    stmt = select(JobRow).where(
        JobRow.state == JobState.QUEUED.value,
        or_(JobRow.run_after.is_(None), JobRow.run_after <= now),
    )
    if kinds is not None:
        if isinstance(kinds, str) or not kinds:
            raise ValueError(f"kinds={kinds!r}: pass a non-empty list of kinds, or None for any")
        stmt = stmt.where(JobRow.kind.in_(list(kinds)))
    return stmt.order_by(JobRow.priority.desc(), JobRow.created_at, JobRow.id)


def _find_row(session: Session, job_id: str, user_id: str | None, *, lock: bool = False) -> JobRow:
    stmt = select(JobRow).where(JobRow.id == job_id)
    if user_id is not None:
        stmt = stmt.where(JobRow.user_id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        raise JobNotFound(job_id)
    return row


def _held_row(
    session: Session, job_id: str, worker_id: str, wanted: JobState, attempt: int | None = None
) -> JobRow:
    row = _find_row(session, job_id, None, lock=True)
    if row.state != JobState.RUNNING.value:
        raise InvalidTransition(job_id, row.state, wanted.value)
    if row.worker_id != worker_id:
        raise NotJobOwner(job_id, worker_id, row.worker_id)
    if attempt is not None and row.attempts != attempt:
        raise StaleAttempt(job_id, worker_id, attempt, row.attempts)
    return row


def _create_tables(engine: Engine) -> None:
    # Several processes may open a new database at once: serialise the check-then-create
    # (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock held until commit).
    with engine.execution_options(**{_WRITE: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK_KEY})
        Base.metadata.create_all(conn)
        _add_new_columns(conn)


def _add_new_columns(conn: Connection) -> None:
    """Bring a jobs table made by an older release up to date (new columns are nullable)."""
    present = {column["name"] for column in inspect(conn).get_columns("jobs")}
    table = JobRow.__table__
    for name in ADDED_JOB_COLUMNS:
        if name not in present:
            kind = table.c[name].type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {kind}"))


def _open_engine(url: str) -> Engine:
    hint = "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"database URL {url!r} is not a database URL: {hint}") from None
    if parsed.get_backend_name() == "sqlite":
        return _open_sqlite(parsed)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise ValueError(f"database URL {url!r}: only SQLite and PostgreSQL are supported; {hint}")


def _open_sqlite(url: URL) -> Engine:
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        raise ValueError(
            f"database URL {url!r}: an in-memory SQLite store cannot be shared between "
            "connections; use a file, e.g. sqlite:///path/to/jobs.sqlite3"
        )
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: object) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself, so writers can take the lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # A deferred BEGIN that later writes can fail with SQLITE_BUSY instead of waiting; IMMEDIATE
    # takes the write lock first, which is what makes claims atomic across processes.
    immediate = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _check_text(name: str, value: str, max_len: int | None) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name}={value!r}: pass a string")
    if max_len is not None and len(value) > max_len:
        raise ValueError(f"{name} is {len(value)} characters long: keep it to {max_len}")
    return value


def _check_name(name: str, value: str, max_len: int) -> str:
    _check_text(name, value, max_len)
    if not value.strip():
        raise ValueError(f"{name}={value!r}: pass a non-empty string")
    return value


def _check_optional_name(name: str, value: str | None, max_len: int) -> str | None:
    return None if value is None else _check_name(name, value, max_len)


def _check_int(name: str, value: int, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r}: pass a whole number")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value!r}: use a number >= {minimum}")
    return value


def _check_json(name: str, value: JsonDict) -> JsonDict:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict of JSON values, got {type(value).__name__}")
    try:
        # The round trip gives the caller back exactly what a later read will return.
        loaded: JsonDict = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} is not JSON: {exc}; use dicts with string keys, lists, strings, "
            "finite numbers, booleans and None"
        ) from None
    return loaded


def _check_state(state: JobState | str) -> JobState:
    try:
        return JobState(state)
    except ValueError:
        known = ", ".join(s.value for s in JobState)
        raise ValueError(f"state={state!r}: use one of {known}") from None


def _check_aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name}={value!r}: pass a timezone-aware datetime")
    return value
