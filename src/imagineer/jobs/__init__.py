"""Durable jobs: a queue and store in SQLite or PostgreSQL, and the worker loop that drains it."""

from imagineer.jobs.models import (
    DeliveryAttempt,
    InvalidTransition,
    Job,
    JobError,
    JobNotFound,
    JobState,
    NotJobOwner,
    Refusal,
    RetryPolicy,
    StaleAttempt,
    WebhookDelivery,
    WebhookState,
)
from imagineer.jobs.store import JobStore, default_database_url
from imagineer.jobs.worker import BatchHandler, Handler, JobContext, Worker, WorkerThread

__all__ = [
    "BatchHandler",
    "DeliveryAttempt",
    "Handler",
    "InvalidTransition",
    "Job",
    "JobContext",
    "JobError",
    "JobNotFound",
    "JobState",
    "JobStore",
    "NotJobOwner",
    "Refusal",
    "RetryPolicy",
    "StaleAttempt",
    "WebhookDelivery",
    "WebhookState",
    "Worker",
    "WorkerThread",
    "default_database_url",
]
