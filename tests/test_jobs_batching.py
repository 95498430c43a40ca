"""Batches, retries and attempts in the job queue: store and worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagineer.jobs import (
    Job,
    JobContext,
    JobState,
    JobStore,
    RetryPolicy,
    StaleAttempt,
    Worker,
    WorkerThread,
)
from waiting import wait_for

pytest_plugins = ["job_stores"]


class Clock:
    """A settable clock for the store, so waits are checked without waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# --- retries wait longer each time ---------------------------------------------------------------


def test_retry_waits_grow_to_the_cap() -> None:
    policy = RetryPolicy(base_s=2, factor=4, cap_s=300, jitter=0)
    assert [policy.delay_s(n) for n in range(1, 7)] == [2, 8, 32, 128, 300, 300]
    spread = RetryPolicy(base_s=10, jitter=0.1)
    assert spread.delay_s(1, 0.0) == pytest.approx(9) and spread.delay_s(1, 0.999) < 11
    for bad in ({"base_s": -1}, {"factor": 0.5}, {"jitter": 1.0}, {"cap_s": float("nan")}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]


def test_a_failed_attempt_is_retried_only_after_its_wait(db_url: str) -> None:
    clock = Clock()
    policy = RetryPolicy(base_s=2, factor=4, cap_s=300, jitter=0)
    with JobStore(db_url, clock=clock, retry=policy) as store:
        job = store.submit("imagine", {}, max_attempts=3)
        first = store.claim("w")
        assert first is not None
        back = store.fail(job.id, "w", "engine error", attempt=1)
        assert back.state is JobState.QUEUED and back.run_after == clock.now + timedelta(seconds=2)
        assert store.claim("w") is None  # still waiting
        clock.advance(2)
        second = store.claim("w")
        assert second is not None and second.attempts == 2
        # A dead worker's job waits too, longer after each failure, and says why it waited.
        clock.advance(60)
        assert store.requeue_stale(30) == 1
        stale = store.get(job.id)
        assert stale.run_after == clock.now + timedelta(seconds=8)
        assert stale.error is not None and "stopped sending heartbeats on attempt 2" in stale.error
        clock.advance(8)
        assert store.claim("w") is not None
        final = store.fail(job.id, "w", "engine error again", attempt=3)
        assert final.state is JobState.FAILED and final.error == "engine error again"
        assert final.run_after is None


def test_release_requeues_at_once_without_spending_an_attempt(store: JobStore) -> None:
    job = store.submit("imagine", {}, max_attempts=1)
    claimed = store.claim("w1")
    assert claimed is not None
    back = store.release(job.id, "w1", "shutting down", attempt=1)
    assert back.state is JobState.QUEUED and (back.attempts, back.max_attempts) == (1, 2)
    assert back.error == "shutting down" and back.run_after is None
    again = store.claim("w1")
    assert again is not None and again.attempts == 2
    # The interrupted attempt, still running somewhere, can no longer report.
    with pytest.raises(StaleAttempt, match="attempt 1 of job"):
        store.complete(job.id, "w1", {"late": True}, attempt=1)
    with pytest.raises(StaleAttempt):
        store.heartbeat(job.id, "w1", attempt=1)
    done = store.complete(job.id, "w1", {"ok": True}, attempt=2)
    assert done.state is JobState.DONE and done.result == {"ok": True}


def test_claim_mates_takes_only_due_jobs_with_the_same_key(db_url: str) -> None:
    clock = Clock()
    with JobStore(db_url, clock=clock, retry=RetryPolicy(base_s=5, jitter=0)) as store:
        head = store.submit("imagine", {}, batch_key="k1")
        waiting = store.submit("imagine", {}, batch_key="k1")
        store.claim("w")  # head
        store.claim("w")  # waiting
        store.fail(waiting.id, "w", "boom", attempt=1)  # back in the queue, for 5 s
        other = store.submit("imagine", {}, batch_key="k2")
        mate = store.submit("imagine", {}, batch_key="k1")
        taken = store.claim_mates("w2", "k1", max_jobs=5)
        assert [j.id for j in taken] == [mate.id]
        assert store.get(other.id).state is JobState.QUEUED
        assert store.claim_mates("w2", "k1", max_jobs=0) == []
        with pytest.raises(ValueError, match="batch_key"):
            store.claim_mates("w2", "", max_jobs=1)
        clock.advance(5)
        assert [j.id for j in store.claim_mates("w2", "k1", max_jobs=5)] == [waiting.id]
        assert store.get(head.id).state is JobState.RUNNING


def test_an_older_database_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the jobs table as the first release made it
        conn.execute(
            "CREATE TABLE jobs (id VARCHAR(32) PRIMARY KEY, kind VARCHAR(32), state VARCHAR(16),"
            " payload JSON, result JSON, error TEXT, user_id VARCHAR(128), priority INTEGER,"
            " batch_key VARCHAR(256), idempotency_key VARCHAR(256), attempts INTEGER,"
            " max_attempts INTEGER, worker_id VARCHAR(128), progress_step INTEGER,"
            " progress_total INTEGER, cancel_requested BOOLEAN, created_at DATETIME,"
            " started_at DATETIME, finished_at DATETIME, heartbeat_at DATETIME)"
        )
    with JobStore(f"sqlite:///{path}") as store:
        job = store.submit("imagine", {}, webhook_url="https://example.org/hook")
        assert store.get(job.id).webhook_url == "https://example.org/hook"


# --- workers take batches ---------------------------------------------------------------------


def test_worker_runs_jobs_with_one_key_together(store: JobStore) -> None:
    batches: list[list[str]] = []

    def batch(jobs: Sequence[Job], ctxs: Sequence[JobContext]) -> list[dict | Exception]:
        batches.append([job.payload["n"] for job in jobs])
        assert [ctx.attempt for ctx in ctxs] == [1] * len(jobs)
        return [
            ValueError("n=3 is bad") if job.payload["n"] == "a3" else {"n": job.payload["n"]}
            for job in jobs
        ]

    def alone(job: Job, ctx: JobContext) -> dict[str, object]:
        batches.append([job.payload["n"]])
        return {"n": job.payload["n"]}

    for n, key in [
        ("a1", "k"),
        ("a2", "k"),
        ("b1", "other"),
        ("a3", "k"),
        ("a4", "k"),
        ("a5", "k"),
    ]:
        store.submit("imagine", {"n": n}, batch_key=key, max_attempts=1)
    worker = Worker(store, alone, worker_id="w", batch_handler=batch, max_batch=4, batch_window_s=0)
    ended = []
    while jobs := worker.run_batch_once():
        ended += jobs
    assert batches == [["a1", "a2", "a3", "a4"], ["b1"], ["a5"]]
    by_n = {job.payload["n"]: job for job in ended}
    assert by_n["a3"].state is JobState.FAILED and by_n["a3"].error == "n=3 is bad"
    assert all(by_n[n].state is JobState.DONE for n in ("a1", "a2", "a4", "a5", "b1"))
    assert by_n["a2"].result == {"n": "a2"}  # each job gets its own result


def test_a_batch_that_is_not_full_waits_for_mates(store: JobStore) -> None:
    seen: list[int] = []

    def batch(jobs: Sequence[Job], ctxs: Sequence[JobContext]) -> list[dict | Exception]:
        seen.append(len(jobs))
        return [{} for _ in jobs]

    first = store.submit("imagine", {}, batch_key="k")
    worker = Worker(
        store, lambda j, c: {}, worker_id="w", batch_handler=batch, max_batch=4, batch_window_s=3
    )
    thread = threading.Thread(target=worker.run_batch_once)
    thread.start()
    wait_for(lambda: store.get(first.id).state is JobState.RUNNING, "the first claim", 30.0)
    late = store.submit("imagine", {}, batch_key="k")  # within the window: it joins
    thread.join(30)
    assert seen == [2]
    assert store.get(late.id).state is JobState.DONE


def test_a_batch_handler_that_miscounts_fails_every_job(store: JobStore) -> None:
    for _ in range(2):
        store.submit("imagine", {}, batch_key="k", max_attempts=1)
    worker = Worker(
        store,
        lambda j, c: {},
        worker_id="w",
        batch_handler=lambda jobs, ctxs: [{}],
        max_batch=2,
        batch_window_s=0,
    )
    ended = worker.run_batch_once()
    assert [j.state for j in ended] == [JobState.FAILED, JobState.FAILED]
    assert all("answered 1 of 2" in (j.error or "") for j in ended)


def test_a_taken_over_attempt_never_reports_and_its_files_are_dropped(store: JobStore) -> None:
    """The same worker claims the job again after it was requeued: the first attempt's
    result is keyed by attempt 1 and refused, and the discard hook deletes its files."""
    entered, release = threading.Event(), threading.Event()
    discarded: list[tuple[str, int]] = []

    def slow(job: Job, ctx: JobContext) -> dict[str, object]:
        if ctx.attempt == 1:
            entered.set()
            assert release.wait(30)
        return {"attempt": ctx.attempt}

    job = store.submit("imagine", {})
    worker = Worker(
        store,
        slow,
        worker_id="w",
        heartbeat_interval=5,  # no beat in the test's time: the heartbeat cannot interfere
        stale_after_s=11,
        on_discard=lambda j, result: discarded.append((j.id, j.attempts)),
    )
    first = threading.Thread(target=worker.run_once)
    first.start()
    assert entered.wait(30)
    assert store.requeue_stale(0) == 1  # taken for dead…
    again = worker.run_once()  # …and run again by the same worker, as attempt 2
    assert again is not None and again.result == {"attempt": 2}
    release.set()
    first.join(30)
    assert store.get(job.id).result == {"attempt": 2}
    assert discarded == [(job.id, 1)]


def test_worker_thread_stop_requeues_what_outlives_the_grace(store: JobStore) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(job: Job, ctx: JobContext) -> dict[str, object]:
        entered.set()
        while not release.is_set() and not ctx.cancelled():
            time.sleep(0.01)
        return {}

    job = store.submit("imagine", {}, max_attempts=1)
    thread = WorkerThread(
        Worker(store, slow, worker_id="w", poll_interval=0.02, heartbeat_interval=0.05)
    )
    thread.start()
    assert entered.wait(30)
    assert thread.stop(0.1, "bye") == [job.id]
    back = store.get(job.id)
    assert back.state is JobState.QUEUED and back.error == "bye" and back.max_attempts == 2
    assert thread.join(30)  # the attempt saw its heartbeat refused and stopped
    assert store.get(job.id).state is JobState.QUEUED
