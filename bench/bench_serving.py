"""Serving speed against a real server on 127.0.0.1 with the embedded engine: images/s with many
concurrent clients vs one at a time, and the server's overhead per image over the bare engine.

Run: python bench/bench_serving.py [--clients 16] [--serial-jobs 6] [--concurrent-jobs 32]
Prints a table and writes bench/results/serving.json. Every job is a 2x2 grid (4 images) at the
engine's default steps, with the full provenance a server writes (watermark, C2PA, IPTC,
recipe). Figures are ratios within one run: absolute times move with the machine's load.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from _harness import Report, Timing, time_call

IMAGES_PER_JOB = 4
PROMPTS = (
    "a red sphere on the left of a blue cube",
    "two yellow cones in the snow",
    "a green cylinder at night",
    "a small purple cube next to a big orange sphere",
)

# The server under test: the real app with its in-process (batching) worker, limits raised so
# the clients' polling is not rate limited.
_SERVER = """
import sys
import uvicorn
from imagineer.config import Settings
from imagineer.server.app import create_app
from imagineer.server.options import ServerOptions

port, batch = int(sys.argv[1]), int(sys.argv[2])
options = ServerOptions(
    port=port, rate_per_s=1e6, rate_burst=10**6, jobs_per_day=None, batch_jobs=batch,
    poll_interval_s=0.02, heartbeat_s=0.5,
)
app = create_app(Settings.from_env(), options=options)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


@dataclass(frozen=True)
class JobRun:
    """One job as a client saw it, and the stages its result reports."""

    latency_s: float  # submit to done, as the client saw it
    generate_s: float
    save_s: float  # provenance: watermark, C2PA, IPTC/XMP, recipe, PNG encoding
    route_s: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_server(data_dir: Path, batch: int) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "IMAGINEER_DATA_DIR": str(data_dir),
        "IMAGINEER_THREADS": "1",
        "IMAGINEER_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(port), str(batch)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer within 10 minutes")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(60)


def run_job(client: httpx.Client, prompt: str, steps: int | None) -> JobRun:
    """Submit one job and poll until it ends; the client's latency and the job's stages."""
    body: dict[str, Any] = {"prompt": prompt}
    if steps is not None:
        body["steps"] = steps
    started = time.perf_counter()
    created = client.post("/v1/jobs", json=body)
    created.raise_for_status()
    job_id = created.json()["id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.02)
    latency = time.perf_counter() - started
    if job["state"] != "done":
        raise RuntimeError(f"job {job_id} ended {job['state']}: {job['error']}")
    t = job["result"]["timings"]
    return JobRun(latency, t["generate_s"], t["save_s"], t["route_s"])


def serial(base: str, jobs: int, steps: int | None, seeds: Iterator[int]) -> list[JobRun]:
    with httpx.Client(base_url=base, timeout=600) as client:
        return [
            run_job(client, f"{PROMPTS[i % len(PROMPTS)]} --seed {next(seeds)}", steps)
            for i in range(jobs)
        ]


def concurrent(
    base: str, clients: int, jobs: int, steps: int | None, seeds: Iterator[int]
) -> tuple[float, list[JobRun]]:
    """`clients` threads, each submitting and awaiting one job at a time, `jobs` in all."""
    todo = iter(range(jobs))
    lock = threading.Lock()
    runs: list[JobRun] = []
    errors: list[BaseException] = []

    def client_loop() -> None:
        with httpx.Client(base_url=base, timeout=600) as client:
            while True:
                with lock:
                    i = next(todo, None)
                    seed = next(seeds)
                if i is None:
                    return
                try:
                    run = run_job(client, f"{PROMPTS[i % len(PROMPTS)]} --seed {seed}", steps)
                except BaseException as exc:  # reported after the threads end
                    errors.append(exc)
                    return
                with lock:
                    runs.append(run)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    return wall, runs


def bare_engine(steps: int | None, repeats: int) -> tuple[Timing, Timing]:
    """The engine call alone for one grid, and the same grid through the service in-process
    (engine + provenance, no server or queue), both per image."""
    import torch

    from imagineer.config import Settings
    from imagineer.engines.base import RunControl
    from imagineer.prompts import parse
    from imagineer.runtime import Runtime
    from imagineer.service import Service

    # The module, not the function of the same name that imagineer.service exports.
    planning = importlib.import_module("imagineer.service.plan")
    torch.set_num_threads(1)
    data = Path(tempfile.mkdtemp(prefix="bench-serving-direct-"))
    runtime = Runtime(Settings(data_dir=data, output_dir=data / "out", threads=1, device="cpu"))
    service = Service(runtime)
    engine = runtime.registry.get("embedded")
    seeds = itertools.count(10_000, 7)

    def engine_call() -> None:
        grid = planning.plan_request(
            parse(f"{PROMPTS[0]} --seed {next(seeds)}"), engine.info, steps=steps
        )
        engine.generate(list(grid.inputs), RunControl())

    def service_call() -> None:
        service.imagine(f"{PROMPTS[0]} --seed {next(seeds)}", steps=steps)

    engine_t = time_call("bare engine call, per image", engine_call, repeats=repeats)
    service_t = time_call(
        "engine + provenance in-process, per image", service_call, repeats=repeats
    )
    runtime.close()
    return _per_image(engine_t), _per_image(service_t)


def _per_image(timing: Timing) -> Timing:
    return Timing(timing.label, tuple(t / IMAGES_PER_JOB for t in timing.runs_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--serial-jobs", type=int, default=6)
    parser.add_argument("--concurrent-jobs", type=int, default=32)
    parser.add_argument(
        "--batches", default="1,4", help="jobs per engine batch to compare, comma-separated"
    )
    parser.add_argument("--steps", type=int, default=None, help="default: the engine's")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    report = Report("serving")
    load_before = os.getloadavg()
    engine_t, service_t = bare_engine(args.steps, args.repeats)
    seeds = itertools.count(1)
    one: list[JobRun] = []
    crowds: dict[int, tuple[float, list[JobRun]]] = {}
    for batch in batches:
        data_dir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
        with running_server(data_dir, batch) as base:
            serial(base, 1, args.steps, seeds)  # warm-up: loads the engine in the server
            if not one:
                one = serial(base, args.serial_jobs, args.steps, seeds)
            crowds[batch] = concurrent(base, args.clients, args.concurrent_jobs, args.steps, seeds)

    # (b) overhead at concurrency 1, per image
    report.add(engine_t)
    report.add(service_t)
    served = report.add(
        Timing(
            "server job at concurrency 1, per image",
            tuple(r.latency_s / IMAGES_PER_JOB for r in one),
        )
    )
    report.add_ratio(served, engine_t)
    report.add_ratio(service_t, engine_t)
    # (a) throughput: seconds per image (the inverse of images/s), one at a time vs many
    serial_s = sum(r.latency_s for r in one) / (len(one) * IMAGES_PER_JOB)
    one_at_a_time = report.add(
        Timing(f"one client at a time (batch {batches[0]}), s/image", (serial_s,))
    )
    per_s = {"one_at_a_time": 1 / serial_s}
    for batch, (wall, many) in crowds.items():
        many_s = wall / (len(many) * IMAGES_PER_JOB)
        crowd = report.add(
            Timing(f"{args.clients} concurrent clients, batch {batch}, s/image", (many_s,))
        )
        report.add_ratio(one_at_a_time, crowd)
        per_s[f"{args.clients}_clients_batch_{batch}"] = 1 / many_s

    gen = _median([r.generate_s for r in one]) / IMAGES_PER_JOB
    save = _median([r.save_s for r in one]) / IMAGES_PER_JOB
    route = _median([r.route_s for r in one]) / IMAGES_PER_JOB
    latency = _median([r.latency_s for r in one]) / IMAGES_PER_JOB
    engine = engine_t.median_s
    queue = latency - gen - save - route
    report.context.update(
        {
            "clients": args.clients,
            "serial_jobs": len(one),
            "concurrent_jobs": args.concurrent_jobs,
            "images_per_s": per_s,
            "overhead_vs_engine": (latency - engine) / engine,
            "server_and_queue_overhead_vs_engine": queue / engine,
            "provenance_overhead_vs_engine": save / engine,
            "route_overhead_vs_engine": route / engine,
            "in_job_generate_vs_bare_engine": (gen - engine) / engine,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "note": "CPU shared with a training process; run under nice",
        }
    )
    report.finish()
    print("images/s: " + ", ".join(f"{k} {v:.3f}" for k, v in per_s.items()))
    print(
        f"overhead per image at concurrency 1: {(latency - engine) / engine:+.1%} of the engine "
        f"call ({engine * 1e3:.0f} ms): provenance {save / engine:.1%}, "
        f"server+queue {queue / engine:.1%}, route {route / engine:.1%}, "
        f"in-job generate vs bare {(gen - engine) / engine:+.1%}"
    )


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


if __name__ == "__main__":
    main()
