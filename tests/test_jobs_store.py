"""JobStore contract tests, run unchanged against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagineer.jobs import (
    InvalidTransition,
    Job,
    JobNotFound,
    JobState,
    JobStore,
    NotJobOwner,
    default_database_url,
)

pytest_plugins = ["job_stores"]


def _running(store: JobStore, worker: str = "w1", **submit: object) -> Job:
    job = store.submit("imagine", {"prompt": "a cat"}, **submit)  # type: ignore[arg-type]
    claimed = store.claim(worker)
    assert claimed is not None and claimed.id == job.id
    return claimed


# --- submit and read -------------------------------------------------------------------------


def test_submit_returns_a_typed_frozen_queued_job(store: JobStore) -> None:
    job = store.submit(
        "imagine", {"prompt": "a cat", "size": [64, 64]}, priority=2, batch_key="emb-64"
    )
    assert isinstance(job, Job)
    assert job.state is JobState.QUEUED
    assert (job.kind, job.user_id, job.priority, job.batch_key) == ("imagine", "local", 2, "emb-64")
    assert (job.attempts, job.max_attempts, job.worker_id, job.result) == (0, 3, None, None)
    assert job.created_at.tzinfo is not None and job.created_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - job.created_at) < timedelta(seconds=30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.state = JobState.DONE  # type: ignore[misc]
    assert store.get(job.id) == job


def test_job_ids_are_unguessable(store: JobStore) -> None:
    ids = {store.submit("imagine", {}).id for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) >= 20 for i in ids)


def test_get_unknown_id_raises_job_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound, match="nope"):
        store.get("nope")


def test_jobs_survive_closing_and_reopening_the_store(db_url: str) -> None:
    first = JobStore(db_url)
    job = first.submit("upscale", {"factor": 2})
    first.close()
    second = JobStore(db_url)
    try:
        assert second.get(job.id) == job
    finally:
        second.close()


def test_stores_opened_at_once_on_a_new_database_all_work(new_db_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_and_submit() -> None:
        start.wait()
        try:
            with JobStore(new_db_url) as own:  # each one checks for and creates the tables
                own.submit("imagine", {})
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with JobStore(new_db_url) as store:
        assert len(store.list()) == 4


def test_list_is_newest_first_filters_and_pages(store: JobStore) -> None:
    jobs = [store.submit("imagine", {"n": n}) for n in range(5)]
    store.cancel(jobs[1].id)
    page = store.list(limit=2)
    assert [j.id for j in page] == [jobs[4].id, jobs[3].id]
    rest = store.list(limit=10, before=page[-1].created_at)
    assert [j.id for j in rest] == [jobs[2].id, jobs[1].id, jobs[0].id]
    assert [j.id for j in store.list(state="cancelled")] == [jobs[1].id]
    assert len(store.list(state=JobState.QUEUED)) == 4
    with pytest.raises(ValueError, match="'sleeping'"):
        store.list(state="sleeping")
    with pytest.raises(ValueError, match="timezone-aware"):
        store.list(before=datetime(2030, 1, 1))


def test_submit_rejects_bad_input_naming_it(store: JobStore) -> None:
    cases: list[tuple[str, object, str]] = [
        ("kind", "", "kind"),
        ("payload", {"x": object()}, "payload is not JSON"),
        ("payload", {"x": float("nan")}, "payload is not JSON"),
        ("payload", ["not", "a", "dict"], "payload must be a dict"),
        ("priority", "1", "priority='1'"),
        ("max_attempts", 0, "max_attempts=0"),
        ("user_id", " ", "user_id"),
    ]
    for field, value, message in cases:
        args: dict[str, object] = {"kind": "imagine", "payload": {}, field: value}
        with pytest.raises(ValueError, match=message):
            store.submit(**args)  # type: ignore[arg-type]
    assert store.list() == []


# --- the state machine -----------------------------------------------------------------------


def test_claim_heartbeat_complete_walks_the_happy_path(store: JobStore) -> None:
    job = store.submit("imagine", {"prompt": "a cat"})
    running = store.claim("w1")
    assert running is not None and running.id == job.id
    assert running.state is JobState.RUNNING
    assert (running.worker_id, running.attempts) == ("w1", 1)
    assert running.started_at is not None and running.heartbeat_at is not None
    assert store.heartbeat(job.id, "w1", step=3, total=20) is True
    beat = store.get(job.id)
    assert (beat.progress_step, beat.progress_total) == (3, 20)
    done = store.complete(job.id, "w1", {"images": ["a.png"]})
    assert done.state is JobState.DONE
    assert done.result == {"images": ["a.png"]}
    assert done.finished_at is not None and done.finished_at >= running.started_at
    assert store.get(job.id) == done


def test_watchers_hear_each_committed_change_of_a_job(store: JobStore) -> None:
    heard: list[str] = []

    def broken(_job_id: str) -> None:
        raise RuntimeError("a waiter went away")

    stop = store.watch(heard.append)
    store.watch(broken)  # its failure must not fail the store's caller
    first, second = store.submit("imagine", {}), store.submit("imagine", {})
    assert heard == []  # a new job has no one waiting on it yet
    store.claim("w1")
    store.heartbeat(first.id, "w1", step=1, total=2)
    store.complete(first.id, "w1", {})
    store.cancel(second.id)
    assert heard == [first.id, first.id, first.id, second.id]
    stop()
    third = store.submit("imagine", {})
    store.cancel(third.id)
    assert heard == [first.id, first.id, first.id, second.id]


def test_claim_takes_highest_priority_then_oldest_and_respects_kinds(store: JobStore) -> None:
    old = store.submit("imagine", {})
    video = store.submit("animate", {})
    urgent = store.submit("imagine", {}, priority=5)
    newer = store.submit("imagine", {})
    order = [store.claim("w", kinds=["imagine"]) for _ in range(4)]
    assert [j.id if j else None for j in order] == [urgent.id, old.id, newer.id, None]
    claimed = store.claim("w", kinds=["animate", "upscale"])
    assert claimed is not None and claimed.id == video.id
    assert store.claim("w") is None
    with pytest.raises(ValueError, match="kinds"):
        store.claim("w", kinds=[])


# (the job's state, the call that must be refused, the message naming both states)
_ILLEGAL = [
    ("queued", "complete", "from queued to done"),
    ("queued", "fail", "from queued to failed"),
    ("queued", "heartbeat", "from queued to running"),
    ("queued", "mark_cancelled", "from queued to cancelled"),
    ("done", "complete", "from done to done"),
    ("done", "fail", "from done to failed"),
    ("done", "cancel", "from done to cancelled"),
    ("failed", "cancel", "from failed to cancelled"),
    ("failed", "complete", "from failed to done"),
    ("cancelled", "complete", "from cancelled to done"),
    ("running", "delete", "from running to deleted"),
]


def _prepare(store: JobStore, state: str) -> str:
    job = store.submit("imagine", {}, max_attempts=1)
    if state == "cancelled":
        store.cancel(job.id)
    if state in ("running", "done", "failed"):
        assert store.claim("w1") is not None
    if state == "done":
        store.complete(job.id, "w1", {})
    if state == "failed":
        store.fail(job.id, "w1", "broken")
    assert store.get(job.id).state.value == state
    return job.id


def _attempt(store: JobStore, call: str, job_id: str) -> object:
    calls = {
        "complete": lambda: store.complete(job_id, "w1", {"late": True}),
        "fail": lambda: store.fail(job_id, "w1", "late"),
        "heartbeat": lambda: store.heartbeat(job_id, "w1"),
        "mark_cancelled": lambda: store.mark_cancelled(job_id, "w1"),
        "cancel": lambda: store.cancel(job_id),
        "delete": lambda: store.delete(job_id),
    }
    return calls[call]()


def test_illegal_transitions_raise_naming_both_states(store: JobStore) -> None:
    for state, call, message in _ILLEGAL:
        job_id = _prepare(store, state)
        before = store.get(job_id)
        with pytest.raises(InvalidTransition, match=message) as caught:
            _attempt(store, call, job_id)
        assert caught.value.current == state
        assert store.get(job_id) == before, f"{call} on a {state} job changed it"
        if state == "running":
            store.complete(job_id, "w1", {})
        store.delete(job_id)  # the next case starts from an empty queue


def test_a_worker_cannot_report_on_a_job_it_does_not_hold(store: JobStore) -> None:
    job = _running(store, "w1")
    with pytest.raises(NotJobOwner, match="'w2'"):
        store.complete(job.id, "w2", {"by": "w2"})
    with pytest.raises(NotJobOwner):
        store.heartbeat(job.id, "w2")
    # w1 looks dead, w2 takes the job over; w1's late result must not count.
    assert store.requeue_stale(0) == 1
    assert store.claim("w2") is not None
    with pytest.raises(NotJobOwner):
        store.complete(job.id, "w1", {"by": "w1"})
    done = store.complete(job.id, "w2", {"by": "w2"})
    with pytest.raises(InvalidTransition):
        store.complete(job.id, "w1", {"by": "w1"})
    assert store.get(job.id) == done
    assert (done.result, done.attempts) == ({"by": "w2"}, 2)


def test_delete_forgets_finished_and_queued_jobs(store: JobStore) -> None:
    done_id = _prepare(store, "done")
    queued = store.submit("imagine", {})
    store.delete(done_id)
    store.delete(queued.id)
    for job_id in (done_id, queued.id):
        with pytest.raises(JobNotFound):
            store.get(job_id)
    assert store.claim("w") is None


# --- cancel ----------------------------------------------------------------------------------


def test_cancel_of_a_queued_job_is_immediate_and_final(store: JobStore) -> None:
    job = store.submit("imagine", {})
    cancelled = store.cancel(job.id)
    assert cancelled.state is JobState.CANCELLED and cancelled.finished_at is not None
    assert store.cancel(job.id) == cancelled  # asking twice is harmless
    assert store.claim("w1") is None


def test_cancel_of_a_running_job_asks_the_worker_to_stop(store: JobStore) -> None:
    job = _running(store)
    asked = store.cancel(job.id)
    assert asked.state is JobState.RUNNING and asked.cancel_requested
    assert store.heartbeat(job.id, "w1", step=4, total=10) is False
    stopped = store.mark_cancelled(job.id, "w1")
    assert stopped.state is JobState.CANCELLED and stopped.finished_at is not None


def test_a_failure_after_a_cancel_request_is_not_retried(store: JobStore) -> None:
    job = _running(store)
    store.cancel(job.id)
    ended = store.fail(job.id, "w1", "interrupted")
    assert ended.state is JobState.CANCELLED
    assert store.claim("w1") is None


# --- retries and recovery --------------------------------------------------------------------


def test_failures_are_retried_then_fail_with_the_last_reason(store: JobStore) -> None:
    job = store.submit("imagine", {}, max_attempts=2)
    assert store.claim("w1") is not None
    retry = store.fail(job.id, "w1", "out of memory")
    assert retry.state is JobState.QUEUED
    assert (retry.attempts, retry.error, retry.worker_id) == (1, "out of memory", None)
    again = store.claim("w2")
    assert again is not None and again.attempts == 2
    final = store.fail(job.id, "w2", "out of memory again")
    assert final.state is JobState.FAILED
    assert (final.attempts, final.error) == (2, "out of memory again")
    assert final.finished_at is not None
    assert store.claim("w3") is None


def test_requeue_stale_recovers_only_silent_jobs(store: JobStore) -> None:
    job = _running(store, max_attempts=2)
    assert store.requeue_stale(60) == 0
    assert store.get(job.id).state is JobState.RUNNING
    assert store.requeue_stale(0) == 1
    back = store.get(job.id)
    assert (back.state, back.worker_id, back.heartbeat_at) == (JobState.QUEUED, None, None)
    assert store.claim("w2") is not None
    # Out of attempts: a job that keeps killing its worker ends failed, not requeued forever.
    assert store.requeue_stale(0) == 1
    dead = store.get(job.id)
    assert dead.state is JobState.FAILED
    assert dead.error is not None and "'w2' stopped sending heartbeats" in dead.error
    with pytest.raises(ValueError, match="older_than_s"):
        store.requeue_stale(-1)


# --- claims under concurrency ----------------------------------------------------------------


def test_concurrent_claims_never_share_or_lose_a_job(db_url: str) -> None:
    setup = JobStore(db_url)
    submitted = {setup.submit("imagine", {"n": n}).id for n in range(40)}
    claimed: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(len(claimed))

    def drain(slot: int) -> None:
        own = JobStore(db_url)  # each worker its own engine and connections
        start.wait()
        while (job := own.claim(f"w{slot}")) is not None:
            claimed[slot].append(job.id)
            own.complete(job.id, f"w{slot}", {"by": slot})
        own.close()

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(claimed))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = [job_id for ids in claimed for job_id in ids]
    assert len(every) == len(set(every)) == len(submitted)
    assert set(every) == submitted
    finished = setup.list(limit=100)
    assert all(j.state is JobState.DONE and j.attempts == 1 for j in finished)
    setup.close()


def test_claim_batch_groups_jobs_sharing_the_next_jobs_batch_key(store: JobStore) -> None:
    a1 = store.submit("imagine", {}, batch_key="emb-64-20")
    b1 = store.submit("imagine", {}, batch_key="sdxl-1024-30")
    a2 = store.submit("imagine", {}, batch_key="emb-64-20")
    a3 = store.submit("vary", {}, batch_key="emb-64-20")
    a4 = store.submit("imagine", {}, batch_key="emb-64-20")
    batch = store.claim_batch("w1", max_jobs=3, kinds=["imagine"])
    assert [j.id for j in batch] == [a1.id, a2.id, a4.id]
    assert all(j.state is JobState.RUNNING and j.worker_id == "w1" for j in batch)
    assert [j.id for j in store.claim_batch("w1", max_jobs=3)] == [b1.id]
    assert [j.id for j in store.claim_batch("w1", max_jobs=3)] == [a3.id]
    assert store.claim_batch("w1", max_jobs=3) == []


def test_claim_batch_follows_priority_and_never_batches_unkeyed_jobs(store: JobStore) -> None:
    store.submit("imagine", {}, batch_key="k")
    u1 = store.submit("imagine", {}, priority=1)
    store.submit("imagine", {}, priority=1)
    assert [j.id for j in store.claim_batch("w1", max_jobs=4)] == [u1.id]
    urgent = store.submit("imagine", {}, batch_key="k", priority=9)
    batch = store.claim_batch("w1", max_jobs=4)
    assert batch[0].id == urgent.id and len(batch) == 2
    with pytest.raises(ValueError, match="max_jobs"):
        store.claim_batch("w1", max_jobs=0)


# --- idempotency and users -------------------------------------------------------------------


def test_idempotency_key_returns_the_existing_job_per_user(store: JobStore) -> None:
    first = store.submit("imagine", {"prompt": "a cat"}, idempotency_key="req-1")
    again = store.submit("imagine", {"prompt": "a cat"}, idempotency_key="req-1")
    other_user = store.submit("imagine", {"prompt": "a cat"}, idempotency_key="req-1", user_id="bo")
    unkeyed = [store.submit("imagine", {}) for _ in range(2)]
    assert again == first
    assert other_user.id != first.id
    assert unkeyed[0].id != unkeyed[1].id
    assert len(store.list()) == 4


def test_racing_idempotent_submits_make_one_job(db_url: str) -> None:
    JobStore(db_url).close()  # tables exist before the race
    ids: list[str] = []
    start = threading.Barrier(4)

    def submit() -> None:
        own = JobStore(db_url)
        start.wait()
        ids.append(own.submit("imagine", {}, idempotency_key="same").id)
        own.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(ids) == 4 and len(set(ids)) == 1


def test_users_cannot_see_or_touch_each_others_jobs(store: JobStore) -> None:
    mine = store.submit("imagine", {"prompt": "mine"}, user_id="ann")
    theirs = store.submit("imagine", {"prompt": "theirs"}, user_id="bo")
    assert store.get(mine.id, user_id="ann") == mine
    with pytest.raises(JobNotFound) as foreign:
        store.get(theirs.id, user_id="ann")
    with pytest.raises(JobNotFound) as missing:
        store.get("no-such-job", user_id="ann")
    assert str(foreign.value).replace(theirs.id, "X") == str(missing.value).replace(
        "no-such-job", "X"
    )
    assert [j.id for j in store.list(user_id="ann")] == [mine.id]
    with pytest.raises(JobNotFound):
        store.cancel(theirs.id, user_id="ann")
    with pytest.raises(JobNotFound):
        store.delete(theirs.id, user_id="ann")
    assert store.get(theirs.id) == theirs
    assert {j.id for j in store.list()} == {mine.id, theirs.id}


# --- refusals --------------------------------------------------------------------------------


def test_refusals_are_recorded_and_counted_per_user_since_a_time(store: JobStore) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    refusal = store.record_refusal(
        user_id="ann", category="violence", normalized_prompt="a b", message="refused: violence"
    )
    store.record_refusal(user_id="ann", category="sexual", normalized_prompt="c", message="no")
    store.record_refusal(user_id="bo", category="sexual", normalized_prompt="c", message="no")
    assert (refusal.user_id, refusal.category, refusal.normalized_prompt) == (
        "ann",
        "violence",
        "a b",
    )
    assert refusal.created_at.utcoffset() == timedelta(0)
    assert store.count_refusals("ann", start) == 2
    assert store.count_refusals("bo", start) == 1
    assert store.count_refusals("ann", datetime.now(UTC) + timedelta(minutes=1)) == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        store.count_refusals("ann", datetime(2020, 1, 1))


# --- opening stores --------------------------------------------------------------------------


def test_default_url_is_a_wal_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data dir"
    url = default_database_url(data_dir)
    with JobStore(url) as store:
        store.submit("imagine", {})
        assert store.dialect == "sqlite"
    assert (data_dir / "jobs.sqlite3").is_file()
    import sqlite3

    with sqlite3.connect(data_dir / "jobs.sqlite3") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://x@y/z", "not a url at all"]
)
def test_unusable_urls_are_refused_with_a_hint(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        JobStore(url)
