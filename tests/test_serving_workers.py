"""Queued jobs through the real service: batched grids match grids run alone, a killed worker's
attempt leaves no second result, and worker processes stop gracefully on SIGTERM."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from engine_wrappers import WrappedEngine
from imagineer.engines.base import GenerationInput, GenerationOutput, RunControl
from imagineer.jobs import JobState, JobStore
from imagineer.provenance.recipe import Recipe
from imagineer.runtime import Runtime
from imagineer.service import GenerationResult, ImagineJob, Service
from test_service import (
    DENY_POLICY,
    SmallEngine,
    make_runtime,
    pixels,
    quiet_settings,
    tiny_embedded,
)
from waiting import wait_for

TESTS = Path(__file__).parent
PROMPTS = (
    "a red ball --seed 5",
    "a big blue cube on the grass at night --seed 9",  # longer: its tokens are padded
    "a green cone --no fog --chaos 40 --seed 100",
)


class CountingEngine(WrappedEngine):
    """The small engine, recording the size of each engine call."""

    def __init__(self) -> None:
        super().__init__(SmallEngine(tiny_embedded()))
        self.calls: list[int] = []

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        self.calls.append(len(batch))
        return super().generate(batch, control)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_POLICY)
    with make_runtime(quiet_settings(tmp_path, policy_file=policy)) as made:
        yield made


def _timeless(result: GenerationResult) -> list[Recipe]:
    """The result's recipes without the moment each was written."""
    return [dataclasses.replace(recipe, created_at="") for recipe in result.recipes]


def _batched_and_alone(service: Service, out: Path) -> tuple[list[GenerationResult], list]:
    jobs = [
        service.submit(ImagineJob(prompt, out_dir=str(out / "queued"), steps=2))
        for prompt in PROMPTS
    ]
    assert len({job.batch_key for job in jobs}) == 1 and jobs[0].batch_key.startswith("imagine|")
    ended = service.worker("w", max_batch=4, batch_window_s=0).run_batch_once()
    assert [job.state for job in ended] == [JobState.DONE] * 3, [j.error for j in ended]
    batched = [GenerationResult.from_dict(job.result or {}) for job in ended]
    alone = [
        service.imagine(prompt, out_dir=out / f"alone{i}", steps=2)
        for i, prompt in enumerate(PROMPTS)
    ]
    return batched, alone


def test_batched_jobs_get_their_own_results_as_if_run_alone(
    runtime: Runtime, tmp_path: Path
) -> None:
    engine = CountingEngine()
    runtime.add_engine(engine, name="embedded")
    batched, alone = _batched_and_alone(Service(runtime), tmp_path)
    assert engine.calls == [12, 4, 4, 4]  # three grids in one call, then each alone
    for together, single in zip(batched, alone, strict=True):
        assert _timeless(together) == _timeless(single)  # same seeds, prompts, sizes, steps
        assert len({p.parent for p in together.paths}) == 1  # each job in its own folder
        for a, b in zip(together.paths, single.paths, strict=True):
            diff = np.abs(pixels(a).astype(int) - pixels(b).astype(int))
            # Kernels pick their blocking by batch size: the last bit may differ, no more
            # (bit-for-bit equality: the --exact-batches test below).
            assert diff.max() <= 1 and (diff == 0).mean() > 0.9
    folders = {r.paths[0].parent for r in batched}
    assert len(folders) == 3


_EXACT = """
import json, sys
from pathlib import Path
from imagineer.service.batching import batch_invariant_numerics
batch_invariant_numerics()  # before anything computes
sys.path.insert(0, sys.argv[1])
import numpy as np
from test_service import make_runtime, pixels, quiet_settings
from test_serving_workers import _batched_and_alone, _timeless
from imagineer.service import Service
out = Path(sys.argv[2])
with make_runtime(quiet_settings(out)) as runtime:
    batched, alone = _batched_and_alone(Service(runtime), out)
    diffs = [
        int(np.abs(pixels(a).astype(int) - pixels(b).astype(int)).max())
        for t, s in zip(batched, alone) for a, b in zip(t.paths, s.paths)
    ]
    same = [_timeless(t) == _timeless(s) for t, s in zip(batched, alone)]
    print(json.dumps({"diffs": diffs, "recipes": same}))
"""


def test_exact_batches_give_the_same_pixels_bit_for_bit(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _EXACT, str(TESTS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["recipes"] == [True, True, True]
    assert found["diffs"] == [0] * 12


# A worker process whose second output file is its last: the parent kills it there.
_DOOMED = """
import sys, threading
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_service import make_runtime, quiet_settings
import imagineer.service.render as render
from imagineer.service import Service

marker = Path(sys.argv[3])
real_write, written = render.write_output, []

def write_then_hang(image, path, *args, **kwargs):
    out = real_write(image, path, *args, **kwargs)
    written.append(path)
    if len(written) >= 2:  # every labelling thread stops here from the second file on
        marker.write_text(str(path))
        threading.Event().wait(600)
    return out

render.write_output = write_then_hang
with make_runtime(quiet_settings(Path(sys.argv[2]))) as runtime:
    worker = Service(runtime).worker("doomed", heartbeat_interval=0.1, stale_after_s=0.5)
    worker.run_once()
"""


def test_a_killed_attempt_leaves_no_second_result(runtime: Runtime, tmp_path: Path) -> None:
    service = Service(runtime)
    out = tmp_path / "queued"
    job = service.submit(ImagineJob("a lighthouse --seed 4", out_dir=str(out), steps=2))
    marker = tmp_path / "half-written"
    doomed = subprocess.Popen(
        [sys.executable, "-c", _DOOMED, str(TESTS), str(tmp_path), str(marker)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        wait_for(
            lambda: marker.exists() or doomed.poll() is not None,
            "two files written",
            120.0,
            poll_s=0.05,
        )
        assert doomed.poll() is None, f"the doomed worker exited with {doomed.returncode}"
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    first = out / job.id / "1"
    # part of a result from attempt 1 (the cells and grid are written side by side, so two or
    # a few more of its five files)
    assert 2 <= len(list(first.glob("*.png"))) < 5
    time.sleep(0.6)  # its heartbeats are now older than stale_after_s
    assert runtime.store.requeue_stale(0.5) == 1  # what any idle worker does
    survivor = service.worker("survivor", heartbeat_interval=0.1, stale_after_s=0.5)
    # The retry waits a few seconds (backoff) before it can be claimed.
    wait_for(lambda: survivor.run_once() is not None, "the survivor to claim", 60, poll_s=0.05)
    done = service.job(job.id)
    assert (done.state, done.attempts) == (JobState.DONE, 2)
    result = GenerationResult.from_dict(done.result or {})
    assert {p.parent for p in (*result.paths, *result.grids)} == {out / job.id / "2"}
    on_disk = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    listed = sorted(p.relative_to(out) for p in (*result.paths, *result.grids))
    assert on_disk == listed and len(listed) == 5  # attempt 1's half result is gone


class SlowEngine(WrappedEngine):
    """The small engine, taking `seconds` per call (stopping early when asked to)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(SmallEngine(tiny_embedded()))
        self.seconds = seconds

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            control.step(0, 1)  # raises Cancelled once the job is taken back
            time.sleep(0.05)
        return super().generate(batch, control)


_PROCESS = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_service import make_runtime, quiet_settings
from test_serving_workers import SlowEngine
from imagineer.server.worker import WorkerOptions, serve_worker
from imagineer.service import Service

with make_runtime(quiet_settings(Path(sys.argv[2]))) as runtime:
    runtime.add_engine(SlowEngine(float(sys.argv[3])), name="embedded")
    options = WorkerOptions(
        worker_id="proc", poll_interval_s=0.05, heartbeat_s=0.1, grace_s=float(sys.argv[4]),
        webhooks=False,
    )
    started = lambda name: print(name, flush=True)  # noqa: E731
    requeued = serve_worker(Service(runtime), options, on_start=started)
    print("requeued", *requeued, flush=True)
"""


@pytest.mark.parametrize(
    ("engine_s", "grace_s", "ends"), [(3.0, 60.0, "done"), (600, 0.3, "queued")]
)
def test_sigterm_finishes_within_the_grace_or_requeues(
    runtime: Runtime, tmp_path: Path, engine_s: float, grace_s: float, ends: str
) -> None:
    job = Service(runtime).submit(
        ImagineJob("a kite --seed 1", out_dir=str(tmp_path / "q"), steps=1)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _PROCESS, str(TESTS), str(tmp_path), str(engine_s), str(grace_s)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: runtime.store.get(job.id).state is JobState.RUNNING,
            "the claim",
            120.0,
            poll_s=0.05,
        )
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    after = runtime.store.get(job.id)
    assert after.state.value == ends, after
    if ends == "queued":
        assert f"requeued {job.id}" in out
        assert after.max_attempts == 4 and after.error is not None and "stopped" in after.error
    else:
        assert out.strip().endswith("requeued")  # nothing was left to requeue


def test_the_store_of_a_killed_worker_is_not_needed_to_recover(tmp_path: Path) -> None:
    """Everything recovery needs is in the database: a fresh store finds the orphan."""
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    with JobStore(url) as first:
        job = first.submit("imagine", {})
        assert first.claim("gone") is not None
    with JobStore(url) as second:
        assert [j.id for j in second.recover_stale(0)] == [job.id]
