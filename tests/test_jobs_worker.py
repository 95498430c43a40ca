"""Worker tests on SQLite and PostgreSQL, including a worker process killed mid-job."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imagineer.jobs import (
    Handler,
    InvalidTransition,
    Job,
    JobContext,
    JobState,
    JobStore,
    Worker,
    WorkerThread,
)
from waiting import wait_for

pytest_plugins = ["job_stores"]


def _fast_worker(
    store: JobStore, handler: Handler, worker_id: str = "w", stale_after_s: float | None = None
) -> Worker:
    """A worker that polls and beats every 20 ms, so tests take milliseconds."""
    return Worker(
        store,
        handler,
        worker_id=worker_id,
        poll_interval=0.02,
        heartbeat_interval=0.02,
        stale_after_s=stale_after_s,
    )


def test_worker_runs_a_job_reporting_progress_and_result(store: JobStore) -> None:
    def handler(job: Job, ctx: JobContext) -> dict[str, object]:
        for step in range(1, 4):
            ctx.progress(step, 3)
        # The heartbeat thread, not the handler, carries progress to the store.
        wait_for(lambda: store.get(job.id).progress_step == 3, "progress in the store", 10.0)
        return {"echo": job.payload["prompt"]}

    job = store.submit("imagine", {"prompt": "a red fox"})
    ended = _fast_worker(store, handler).run_once()
    assert ended is not None and ended.id == job.id
    assert ended.state is JobState.DONE
    assert ended.result == {"echo": "a red fox"}
    assert (ended.progress_step, ended.progress_total, ended.attempts) == (3, 3, 1)
    assert _fast_worker(store, handler).run_once() is None


def test_handler_errors_fail_the_job_with_the_message_after_retries(store: JobStore) -> None:
    calls: list[int] = []

    def handler(job: Job, ctx: JobContext) -> dict[str, object]:
        calls.append(1)
        raise ValueError(f"unknown token '--arr' (attempt {len(calls)})")

    job = store.submit("imagine", {}, max_attempts=2)
    worker = _fast_worker(store, handler)
    first = worker.run_once()
    assert first is not None and first.state is JobState.QUEUED
    assert first.error == "unknown token '--arr' (attempt 1)"
    last = worker.run_once()
    assert last is not None and last.state is JobState.FAILED
    assert last.error == "unknown token '--arr' (attempt 2)"
    assert "Traceback" not in last.error
    assert worker.run_once() is None and len(calls) == 2
    assert store.get(job.id) == last


def test_a_handler_result_that_is_not_json_fails_the_job(store: JobStore) -> None:
    store.submit("imagine", {}, max_attempts=1)
    ended = _fast_worker(store, lambda job, ctx: {"img": object()}).run_once()
    assert ended is not None and ended.state is JobState.FAILED
    assert ended.error is not None and "result is not JSON" in ended.error
    store.submit("imagine", {}, max_attempts=1)
    ended = _fast_worker(store, lambda job, ctx: None).run_once()  # type: ignore[arg-type,return-value]
    assert ended is not None and ended.error is not None and "returned NoneType" in ended.error


def test_cancelling_a_running_job_stops_it_at_the_next_step(store: JobStore) -> None:
    started = threading.Event()
    steps: list[int] = []

    def handler(job: Job, ctx: JobContext) -> dict[str, object]:
        started.set()
        for step in range(500):
            if ctx.cancelled():
                break
            steps.append(step)
            ctx.progress(step, 500)
            time.sleep(0.01)
        return {"steps": len(steps)}

    job = store.submit("animate", {})
    worker = _fast_worker(store, handler)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    assert started.wait(10)
    store.cancel(job.id)
    thread.join(20)
    ended = store.get(job.id)
    assert ended.state is JobState.CANCELLED
    assert ended.result is None
    assert 0 < len(steps) < 500


def test_graceful_stop_finishes_the_current_job_then_returns(store: JobStore) -> None:
    started, release = threading.Event(), threading.Event()

    def handler(job: Job, ctx: JobContext) -> dict[str, object]:
        started.set()
        assert release.wait(10)
        return {"ok": True}

    first = store.submit("imagine", {})
    second = store.submit("imagine", {})
    stop = threading.Event()
    thread = threading.Thread(target=_fast_worker(store, handler).run, args=(stop,))
    thread.start()
    assert started.wait(10)
    stop.set()
    time.sleep(0.1)
    assert thread.is_alive(), "the worker returned with a job half done"
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    assert store.get(first.id).state is JobState.DONE
    assert store.get(second.id).state is JobState.QUEUED


def test_wake_starts_a_queued_job_before_the_next_poll(store: JobStore) -> None:
    worker = Worker(store, lambda job, ctx: {"ok": True}, worker_id="w", poll_interval=60.0)
    thread = WorkerThread(worker)
    thread.start()
    time.sleep(0.1)  # the worker found nothing and waits for its next poll, a minute away
    job = store.submit("imagine", {})
    worker.wake()
    wait_for(lambda: store.get(job.id).state is JobState.DONE, "the woken worker", 10.0)
    started = time.monotonic()
    assert thread.stop(10.0) == []
    assert time.monotonic() - started < 5.0  # stopping wakes it too


def test_worker_settings_are_checked(tmp_path: Path) -> None:
    with JobStore(f"sqlite:///{tmp_path / 'j.sqlite3'}") as store:
        with pytest.raises(ValueError, match="stale_after_s"):
            Worker(store, lambda j, c: {}, worker_id="w", heartbeat_interval=1, stale_after_s=2)
        with pytest.raises(ValueError, match="worker_id"):
            Worker(store, lambda j, c: {}, worker_id="")
        with pytest.raises(ValueError, match="poll_interval"):
            Worker(store, lambda j, c: {}, worker_id="w", poll_interval=0)
        with pytest.raises(ValueError, match=r"progress\(5, 3\)"):
            JobContext().progress(5, 3)


# A worker that takes a job and never finishes it: the parent kills it with SIGKILL.
_DOOMED = """
import sys, threading
from pathlib import Path
from imagineer.jobs import JobStore, Worker

url, marker = sys.argv[1], Path(sys.argv[2])

def handler(job, ctx):
    ctx.progress(1, 10)
    marker.write_text(job.id)
    threading.Event().wait(120)
    return {"by": "doomed"}

Worker(JobStore(url), handler, worker_id="doomed", heartbeat_interval=0.1, stale_after_s=0.5).run(
    threading.Event()
)
"""


def test_a_job_whose_worker_is_killed_is_finished_exactly_once(
    store: JobStore, db_url: str, tmp_path: Path
) -> None:
    job = store.submit("imagine", {"prompt": "a lighthouse"})
    marker = tmp_path / "claimed"
    doomed = subprocess.Popen([sys.executable, "-c", _DOOMED, db_url, str(marker)])
    try:
        wait_for(lambda: marker.exists() or doomed.poll() is not None, "the worker to claim", 10.0)
        assert doomed.poll() is None, f"the doomed worker exited early with {doomed.returncode}"
    finally:
        doomed.send_signal(signal.SIGKILL)  # no chance to clean up, as in a crash
        doomed.wait()
    orphan = store.get(job.id)
    assert (orphan.state, orphan.worker_id, orphan.attempts) == (JobState.RUNNING, "doomed", 1)

    calls: list[str] = []

    def handler(job: Job, ctx: JobContext) -> dict[str, object]:
        calls.append(job.id)
        return {"by": "survivor"}

    time.sleep(0.6)  # the orphan's last heartbeat is now older than stale_after_s
    survivor = _fast_worker(store, handler, "survivor", stale_after_s=0.5)
    stop = threading.Event()
    thread = threading.Thread(target=survivor.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: store.get(job.id).state.finished, "the survivor to finish the job", 10.0)
    finally:
        stop.set()
        thread.join(10)
    done = store.get(job.id)
    assert done.state is JobState.DONE
    assert (done.result, done.worker_id, done.attempts) == ({"by": "survivor"}, "survivor", 2)
    assert calls == [job.id]
    with pytest.raises(InvalidTransition):
        store.complete(job.id, "doomed", {"by": "doomed"})
    assert store.get(job.id) == done
    assert [j.id for j in store.list()] == [job.id]
