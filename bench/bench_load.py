"""Load test of the queue: 1,000 jobs over HTTP on 127.0.0.1 to a server without a worker,
run by separate worker processes of which one is killed (SIGKILL) five times mid-job.

Run: python bench/bench_load.py [--jobs 1000] [--workers 3] [--kills 5] [--deadline-s 3600]
Then checks: no job lost, none with two results (on disk or in the store), every job done or
failed with a reason, idempotent re-submits answered with the first job, and every webhook
event delivered (at least once, signature valid). Writes bench/results/load.json and exits 1
when a check fails. The engine is the embedded model with tiny random weights at 64x64 and one
step: the load is on the queue, not the pixels. It stops by itself at --deadline-s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from _harness import Report, Timing

FAILING_EVERY = 50  # every 50th job names a model that is not installed: it fails at run time
WEBHOOK_EVERY = 10  # every 10th job carries a webhook
RESUBMIT_EVERY = 20  # every 20th job is submitted twice with the same idempotency key
KILL_AT = (0.10, 0.25, 0.40, 0.55, 0.70)  # fractions of jobs finished at which a worker dies

_SERVER = """
import sys
import uvicorn
from imagineer.config import Settings
from imagineer.server.app import create_app
from imagineer.server.options import ServerOptions

port = int(sys.argv[1])
options = ServerOptions(
    port=port, worker=False, rate_per_s=1e6, rate_burst=10**6, jobs_per_day=None, max_steps=4,
)
uvicorn.run(create_app(Settings.from_env(), options=options), host="127.0.0.1", port=port,
            log_level="warning")
"""


# --- a worker process: the real worker loop over a tiny random-weight engine ---------------------


def run_worker(worker_id: str) -> None:
    """What `imagineer jobs work` runs, over the tiny engine (this process's settings from
    IMAGINEER_* variables)."""
    import torch

    from imagineer.config import Settings
    from imagineer.runtime import Runtime
    from imagineer.server.worker import WorkerOptions, serve_worker
    from imagineer.service import Service

    torch.set_num_threads(1)
    with Runtime(Settings.from_env()) as runtime:
        runtime.add_engine(_tiny_engine(), name="embedded")
        options = WorkerOptions(
            worker_id=worker_id,
            poll_interval_s=0.05,
            heartbeat_s=0.5,
            stale_after_s=10.0,
            batch_jobs=4,
            batch_window_s=0.02,
            grace_s=5.0,
        )
        serve_worker(Service(runtime), options)


def _tiny_engine() -> Any:
    import dataclasses

    import torch

    from imagineer.engines.embedded.engine import EmbeddedEngine
    from imagineer.engines.embedded.text import TextEncoder
    from imagineer.engines.embedded.unet import UNet, UNetConfig
    from imagineer.engines.embedded.upscaler import Upscaler, UpscalerConfig

    torch.manual_seed(0)
    config = UNetConfig.tiny()
    unet = UNet(config)
    upscaler = Upscaler(UpscalerConfig.tiny())
    inner = EmbeddedEngine(
        unet, upscaler, TextEncoder("cpu"), model_hash="0" * 64, model_id="bench-tiny-random"
    )

    class Tiny:
        """The tiny embedded engine planned at 64x64 (8x8 sampled)."""

        info = dataclasses.replace(inner.info, base_area=64 * 64)

        def generate(self, batch: Any, control: Any) -> Any:
            return inner.generate(batch, control)

    return Tiny()


# --- the load test ------------------------------------------------------------------------------


@dataclass
class Receiver:
    """Webhook events as received (each checked against the user's secret)."""

    secret: str = ""
    events: list[tuple[str, str, bool]] = field(default_factory=list)  # (event id, job, valid)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def receiver() -> Iterator[tuple[str, Receiver]]:
    from imagineer.server.webhooks import InvalidSignature, verify

    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                verify(state.secret, headers, body)
                valid = True
            except InvalidSignature:
                valid = False
            event = json.loads(body)
            with state.lock:
                state.events.append((event["id"], event["data"]["id"], valid))
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events", state
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Fleet:
    """The worker processes: started, killed with SIGKILL, replaced, stopped with SIGTERM."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.count = 0

    def spawn(self) -> str:
        self.count += 1
        worker_id = f"load-w{self.count}"
        self.procs[worker_id] = subprocess.Popen(
            [sys.executable, __file__, "--worker", worker_id], env=self.env
        )
        return worker_id

    def kill(self, worker_id: str) -> None:
        proc = self.procs.pop(worker_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def submit_all(base: str, jobs: int, hook: str) -> tuple[list[str], int]:
    """Queue the jobs over HTTP (8 clients); the ids, and how many re-submits got a new job."""

    def one(i: int) -> tuple[str, bool]:
        model = " --model nowhere" if i % FAILING_EVERY == FAILING_EVERY - 1 else ""
        body: dict[str, Any] = {"prompt": f"a red ball on grass --seed {i}{model}", "steps": 1}
        if i % WEBHOOK_EVERY == 0:
            body["webhook_url"] = hook
        headers = {"Idempotency-Key": f"load-{i}"}
        with httpx.Client(base_url=base, timeout=120) as client:
            first = client.post("/v1/jobs", json=body, headers=headers)
            first.raise_for_status()
            job_id: str = first.json()["id"]
            fresh = False
            if i % RESUBMIT_EVERY == 0:
                again = client.post("/v1/jobs", json=body, headers=headers)
                fresh = again.json()["id"] != job_id
        return job_id, fresh

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(jobs)))
    return [job_id for job_id, _ in results], sum(fresh for _, fresh in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--deadline-s", type=float, default=3600.0)
    parser.add_argument("--worker", metavar="ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker)
        return
    data = Path(tempfile.mkdtemp(prefix="bench-load-"))
    env = {
        **os.environ,
        "IMAGINEER_DATA_DIR": str(data),
        "IMAGINEER_WATERMARK": "false",
        "IMAGINEER_SIGN": "false",
        "IMAGINEER_THREADS": "1",
        "IMAGINEER_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("IMAGINEER_")})
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)], env=env)
    fleet = Fleet(env)
    started = time.perf_counter()
    try:
        _wait_until(lambda: _answers(base), "the server to answer", 600)
        with receiver() as (hook, received):
            received.secret = httpx.get(f"{base}/v1/webhooks/secret").json()["secret"]
            ids, fresh = submit_all(base, args.jobs, hook)
            submitted_s = time.perf_counter() - started
            for _ in range(args.workers):
                fleet.spawn()
            kills = _run_with_kills(data, ids, fleet, args.kills, started + args.deadline_s)
            finished_s = time.perf_counter() - started
            _wait_until(lambda: _webhooks_settled(data), "webhook deliveries", 120, raise_=False)
            events = list(received.events)
    finally:
        fleet.stop_all()
        server.terminate()
        server.wait(60)
    checks = _check(data, ids, fresh, kills, events, args)
    _report(args, checks, submitted_s, finished_s)
    if not all(ok for ok, _ in checks.values()):
        sys.exit(1)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float, *, raise_: bool = True
) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            if raise_:
                raise RuntimeError(f"gave up waiting for {what} after {timeout_s:.0f} s")
            return False
        time.sleep(0.5)
    return True


def _store(data: Path) -> Any:
    from imagineer.jobs import JobStore, default_database_url

    return JobStore(default_database_url(data))


def _run_with_kills(
    data: Path, ids: list[str], fleet: Fleet, kills: int, deadline: float
) -> list[dict[str, Any]]:
    """Wait for every job to end, killing a busy worker each time a KILL_AT share is done."""
    from imagineer.jobs import JobState

    done_at = list(KILL_AT[:kills])
    log: list[dict[str, Any]] = []
    rng = random.Random(7)
    with _store(data) as store:
        while time.perf_counter() < deadline:
            states = Counter(job.state for job in store.list(limit=100_000))
            finished = sum(n for state, n in states.items() if state.finished)
            if finished == len(ids):
                return log
            if done_at and finished >= done_at[0] * len(ids):
                busy = {
                    j.worker_id
                    for j in store.list(state=JobState.RUNNING, limit=100)
                    if j.worker_id in fleet.procs
                }
                if busy:
                    victim = rng.choice(sorted(busy))
                    held = [
                        j.id
                        for j in store.list(state=JobState.RUNNING, limit=100)
                        if j.worker_id == victim
                    ]
                    fleet.kill(victim)
                    log.append({"worker": victim, "jobs_held": held, "finished": finished})
                    print(f"killed {victim} holding {len(held)} job(s) at {finished} done")
                    fleet.spawn()
                    done_at.pop(0)
            time.sleep(0.5)
    raise RuntimeError("the deadline passed before every job ended")


def _webhooks_settled(data: Path) -> bool:
    with _store(data) as store:
        return all(d.state.value != "pending" for d in store.webhooks(limit=10_000))


def _check(
    data: Path,
    ids: list[str],
    fresh: int,
    kills: list[dict[str, Any]],
    events: list[tuple[str, str, bool]],
    args: argparse.Namespace,
) -> dict[str, tuple[bool, str]]:
    from imagineer.jobs import JobState
    from imagineer.service import GenerationResult

    with _store(data) as store:
        jobs = {job_id: store.get(job_id) for job_id in ids}
        every = store.list(limit=100_000)
        deliveries = store.webhooks(limit=100_000)
    states = Counter(job.state for job in jobs.values())
    unfinished = [j for j in jobs.values() if not j.state.finished]
    no_reason = [j for j in jobs.values() if j.state is JobState.FAILED and not j.error]
    killed = {job_id for k in kills for job_id in k["jobs_held"]}
    rerun = [j for j in jobs.values() if j.attempts > 1]
    # Files: each done job's result lists exactly the files in one attempt folder; no other
    # attempt folder of any job holds an image.
    listed: set[Path] = set()
    bad_results = []
    for job in jobs.values():
        if job.state is JobState.DONE:
            result = GenerationResult.from_dict(job.result or {})
            files = {*result.paths, *result.grids}
            if len(result.images) != 4 or not all(p.is_file() for p in files):
                bad_results.append(job.id)
            if len({p.parent for p in files}) != 1:
                bad_results.append(job.id)
            listed |= {p.resolve() for p in files}
    on_disk = {p.resolve() for p in (data / "media").rglob("*.png") if ".previews" not in p.parts}
    webhook_jobs = {ids[i] for i in range(0, len(ids), WEBHOOK_EVERY)}
    got = {job for _, job, _ in events}
    per_event = Counter(event_id for event_id, _, _ in events)
    return {
        "jobs in the store": (len(every) == len(ids) == len(set(ids)), f"{len(every)}"),
        "lost (not done/failed/cancelled)": (not unfinished, f"{len(unfinished)}"),
        "states": (True, ", ".join(f"{s.value} {n}" for s, n in sorted(states.items()))),
        "failed without a reason": (not no_reason, f"{len(no_reason)}"),
        "failed as planned (--model nowhere)": (
            states[JobState.FAILED] == len(ids) // FAILING_EVERY,
            f"{states[JobState.FAILED]} of {len(ids) // FAILING_EVERY}",
        ),
        "re-submits that made a second job": (fresh == 0, f"{fresh}"),
        "done jobs with a bad result": (not bad_results, f"{len(bad_results)}"),
        "image files on disk not in a result (duplicates)": (
            on_disk == listed,
            f"{len(on_disk - listed)} extra, {len(listed - on_disk)} missing of {len(listed)}",
        ),
        "kills": (len(kills) == args.kills, f"{len(kills)}, holding {len(killed)} job(s)"),
        "jobs run again after a kill": (
            killed <= {j.id for j in rerun},
            f"{len(rerun)} re-run; all {len(killed)} killed ones among them",
        ),
        "webhook events for every hooked job": (
            got == webhook_jobs and all(d.state.value == "delivered" for d in deliveries),
            f"{len(got)} of {len(webhook_jobs)} jobs, {len(deliveries)} deliveries",
        ),
        "webhook signatures valid": (all(v for _, _, v in events), f"{len(events)} received"),
        "webhook events received twice (at-least-once)": (
            True,
            f"{sum(1 for n in per_event.values() if n > 1)}",
        ),
    }


def _report(
    args: argparse.Namespace,
    checks: dict[str, tuple[bool, str]],
    submitted_s: float,
    finished_s: float,
) -> None:
    report = Report("load")
    report.add(Timing(f"submit {args.jobs} jobs over HTTP (8 clients)", (submitted_s,)))
    report.add(
        Timing(
            f"all {args.jobs} jobs ended ({args.workers} workers, {args.kills} killed)",
            (finished_s,),
        )
    )
    report.context.update(
        {
            "jobs": args.jobs,
            "workers": args.workers,
            "kills": args.kills,
            "checks": {name: {"ok": ok, "value": value} for name, (ok, value) in checks.items()},
            "load_average": os.getloadavg(),
            "note": "CPU shared with a training process; run under nice",
        }
    )
    report.finish()
    width = max(len(name) for name in checks)
    for name, (ok, value) in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
