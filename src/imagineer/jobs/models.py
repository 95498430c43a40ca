"""The job queue's tables, the typed records handed to callers, and its errors."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JsonDict = dict[str, Any]


class JobState(enum.StrEnum):
    """Where a job is in its life: queued → running → done | failed | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class JobError(Exception):
    """Base of the job store's own errors."""


class JobNotFound(JobError, LookupError):
    """No such job, or it belongs to another user (the two read the same on purpose)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class InvalidTransition(JobError):
    """A state change the job's state machine does not allow."""

    def __init__(self, job_id: str, current: str, wanted: str, hint: str = "") -> None:
        message = f"job {job_id!r} cannot go from {current} to {wanted}"
        super().__init__(f"{message}: {hint}" if hint else message)
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


class NotJobOwner(JobError):
    """A worker tried to report on a job it no longer holds (another worker took it over)."""

    def __init__(self, job_id: str, worker_id: str, owner: str | None) -> None:
        super().__init__(
            f"worker {worker_id!r} does not hold job {job_id!r} (held by {owner!r}); "
            "its result is dropped so the job is not reported twice"
        )
        self.job_id = job_id
        self.worker_id = worker_id
        self.owner = owner


class StaleAttempt(NotJobOwner):
    """A worker reported on an earlier attempt of a job it holds again: the result is dropped."""

    def __init__(self, job_id: str, worker_id: str, attempt: int, current: int) -> None:
        JobError.__init__(
            self,
            f"attempt {attempt} of job {job_id!r} is over (attempt {current} runs now); "
            "its result is dropped so the job gets one result",
        )
        self.job_id, self.worker_id, self.owner = job_id, worker_id, worker_id
        self.attempt, self.current = attempt, current


@dataclass(frozen=True)
class RetryPolicy:
    """How long a failed job waits before its next attempt: base * factor**(n-1), capped."""

    base_s: float = 2.0  # the wait after the first failed attempt
    factor: float = 4.0  # each later failure waits this many times longer
    cap_s: float = 300.0  # never longer than this
    jitter: float = 0.1  # +- this fraction at random, so retries of many jobs spread out

    def __post_init__(self) -> None:
        for name in ("base_s", "cap_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}={value!r}: use a number of seconds >= 0")
        if not math.isfinite(self.factor) or self.factor < 1:
            raise ValueError(f"factor={self.factor!r}: use a number >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter={self.jitter!r}: use a fraction from 0 to below 1")

    def delay_s(self, failed_attempts: int, unit: float = 0.5) -> float:
        """The wait after `failed_attempts` failures; unit in [0, 1) draws the jitter."""
        exponent = min(max(failed_attempts, 1) - 1, 64)
        delay = min(self.cap_s, self.base_s * self.factor**exponent)
        return delay * (1 + self.jitter * (2 * unit - 1))


@dataclass(frozen=True)
class Job:
    """One unit of generation work as stored, handed to callers instead of ORM rows."""

    id: str
    kind: str  # "imagine", "vary", "upscale", "remix", "animate", ...
    state: JobState
    payload: JsonDict  # the typed request, serialised by the caller
    result: JsonDict | None
    error: str | None  # the last failure's reason, kept across retries
    user_id: str
    priority: int  # higher runs first
    batch_key: str  # jobs with the same non-empty key can run in one batch
    idempotency_key: str | None
    attempts: int  # claims so far, including the current one: results are keyed by it
    max_attempts: int
    worker_id: str | None  # the worker holding it while running
    progress_step: int | None
    progress_total: int | None
    cancel_requested: bool
    created_at: datetime  # all timestamps are timezone-aware UTC
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    run_after: datetime | None = None  # a retried job waits until then (backoff)
    webhook_url: str | None = None  # told of the job's end by a signed POST


class WebhookState(enum.StrEnum):
    """Where a webhook delivery is: pending (due or waiting to retry), delivered or failed."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class WebhookDelivery:
    """One event about a job's end, on its way to the job's webhook URL."""

    id: str  # also the event's id: a receiver drops repeats by it
    job_id: str
    user_id: str
    url: str
    event: str  # "job.done", "job.failed" or "job.cancelled"
    state: WebhookState
    body: str | None  # the JSON sent, fixed at the first attempt so retries send the same bytes
    attempts: int
    max_attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_status: int | None  # the receiver's last HTTP status, None when it was not reached
    last_error: str | None
    log: tuple[DeliveryAttempt, ...]  # every attempt, oldest first


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try at delivering a webhook."""

    at: datetime
    status: int | None
    error: str | None
    duration_s: float


@dataclass(frozen=True)
class Refusal:
    """One prompt the safety gate refused, kept for audit."""

    id: str
    user_id: str
    created_at: datetime
    category: str
    normalized_prompt: str
    message: str


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_Json = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_jobs_user_idempotency"),
        Index("ix_jobs_claim", "state", "priority", "created_at"),
        Index("ix_jobs_user_created", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    payload: Mapped[JsonDict] = mapped_column(_Json)
    result: Mapped[JsonDict | None] = mapped_column(_Json, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_id: Mapped[str] = mapped_column(String(128), default="local")
    priority: Mapped[int] = mapped_column(default=0)
    batch_key: Mapped[str] = mapped_column(String(256), default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    progress_step: Mapped[int | None] = mapped_column(nullable=True)
    progress_total: Mapped[int | None] = mapped_column(nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)

    def to_job(self) -> Job:
        return Job(
            id=self.id,
            kind=self.kind,
            state=JobState(self.state),
            payload=dict(self.payload),
            result=None if self.result is None else dict(self.result),
            error=self.error,
            user_id=self.user_id,
            priority=self.priority,
            batch_key=self.batch_key,
            idempotency_key=self.idempotency_key,
            attempts=self.attempts,
            max_attempts=self.max_attempts,
            worker_id=self.worker_id,
            progress_step=self.progress_step,
            progress_total=self.progress_total,
            cancel_requested=self.cancel_requested,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            heartbeat_at=self.heartbeat_at,
            run_after=self.run_after,
            webhook_url=self.webhook_url,
        )


# Columns added after the first release: JobStore adds them to an older database on open.
ADDED_JOB_COLUMNS = ("run_after", "webhook_url")


class WebhookRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhooks_due", "state", "next_attempt_at"),
        Index("ix_webhooks_job", "job_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=8)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    log: Mapped[list[JsonDict]] = mapped_column(_Json, default=list)

    def to_delivery(self) -> WebhookDelivery:
        return WebhookDelivery(
            id=self.id,
            job_id=self.job_id,
            user_id=self.user_id,
            url=self.url,
            event=self.event,
            state=WebhookState(self.state),
            body=self.body,
            attempts=self.attempts,
            max_attempts=self.max_attempts,
            created_at=self.created_at,
            next_attempt_at=self.next_attempt_at,
            delivered_at=self.delivered_at,
            last_status=self.last_status,
            last_error=self.last_error,
            log=tuple(
                DeliveryAttempt(
                    at=datetime.fromisoformat(entry["at"]),
                    status=entry.get("status"),
                    error=entry.get("error"),
                    duration_s=float(entry.get("duration_s", 0.0)),
                )
                for entry in (self.log or [])
            ),
        )


class RefusalRow(Base):
    __tablename__ = "refusals"
    __table_args__ = (Index("ix_refusals_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    category: Mapped[str] = mapped_column(String(64))
    normalized_prompt: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)

    def to_refusal(self) -> Refusal:
        return Refusal(
            id=self.id,
            user_id=self.user_id,
            created_at=self.created_at,
            category=self.category,
            normalized_prompt=self.normalized_prompt,
            message=self.message,
        )
