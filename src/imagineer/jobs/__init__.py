"""Durable jobs: a queue and store in SQLite or PostgreSQL, and the worker loop that drains it."""

from imagineer.jobs.models import (
    InvalidTransition,
    Job,
    JobError,
    JobNotFound,
    JobState,
    NotJobOwner,
    Refusal,
)
from imagineer.jobs.store import JobStore, default_database_url
from imagineer.jobs.worker import Handler, JobContext, Worker

__all__ = [
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
    "Worker",
    "default_database_url",
]
