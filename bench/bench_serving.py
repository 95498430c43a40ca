"""Serving speed against a real server on 127.0.0.1 with the embedded engine: images/s with many
concurrent clients vs one at a time, and the server's overhead per image over the bare engine.

Run: python bench/bench_serving.py [--clients 16] [--serial-jobs 6] [--concurrent-jobs 16]
    [--blocks 2] [--batches 1,4] [--scan 1,4,8,16] [--scan-threads 1]
Prints a table and writes bench/results/serving.json. Every job is a 2x2 grid (4 images) at the
engine's default steps, with the full provenance a server writes (watermark, C2PA, IPTC,
recipe). Clients wait on each job's event stream (SSE), as a browser does, not by polling.

Overhead at concurrency 1 is the client's latency per image over the engine's time for the
same job, as the job's own timings report it (same process, same moment); each round also
runs the bare engine call and the same grid through the service in this process, one after
the other, so the three compare under the same machine load. Throughput alternates blocks
of jobs one at a time with blocks of `--concurrent-jobs` jobs from `--clients` clients, so a
change in the machine's load between them does not pose as a gain or a loss. The engine
scan times the engine call alone per image at several batch sizes: how much batching jobs
together can gain on this machine. Figures are ratios within one run: absolute times move
with the machine's load.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from _harness import Report, Timing

IMAGES_PER_JOB = 4
PROMPTS = (
    "a red sphere on the left of a blue cube",
    "two yellow cones in the snow",
    "a green cylinder at night",
    "a small purple cube next to a big orange sphere",
)

# The server under test: the real app with its in-process (batching) worker, limits raised so
# the clients are not rate limited. Its worker polls at the default rate: a submit wakes it.
_SERVER = """
import sys
import uvicorn
from imagineer.config import Settings
from imagineer.server.app import create_app
from imagineer.server.options import ServerOptions

port, batch = int(sys.argv[1]), int(sys.argv[2])
options = ServerOptions(
    port=port, rate_per_s=1e6, rate_burst=10**6, jobs_per_day=None, batch_jobs=batch,
)
app = create_app(Settings.from_env(), options=options)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


@dataclass(frozen=True)
class JobRun:
    """One job as a client saw it, and the stages its result reports."""

    latency_s: float  # submit to the end event, as the client saw it
    generate_s: float
    save_s: float  # provenance: watermark, C2PA, IPTC/XMP, recipe, PNG encoding
    route_s: float


@dataclass(frozen=True)
class Round:
    """One interleaved round at concurrency 1: the same work three ways, per image."""

    engine_s: float
    service_s: float
    served: JobRun


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
    """Submit one job and follow its event stream to the end; the client's latency and the
    job's stages."""
    body: dict[str, Any] = {"prompt": prompt}
    if steps is not None:
        body["steps"] = steps
    started = time.perf_counter()
    created = client.post("/v1/jobs", json=body)
    created.raise_for_status()
    job = _end_event(client, created.json()["id"])
    latency = time.perf_counter() - started
    if job["state"] != "done":
        raise RuntimeError(f"job {job['id']} ended {job['state']}: {job['error']}")
    t = job["result"]["timings"]
    return JobRun(latency, t["generate_s"], t["save_s"], t["route_s"])


def _end_event(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job as the `end` event of its stream carries it."""
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        response.raise_for_status()
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name == "end":
                ended: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return ended
    raise RuntimeError(f"the event stream of job {job_id} closed before its end event")


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


class Local:
    """The engine and the service in this process, on one thread, as the server runs them."""

    def __init__(self, steps: int | None) -> None:
        import torch

        from imagineer.config import Settings
        from imagineer.runtime import Runtime
        from imagineer.service import Service

        torch.set_num_threads(1)
        data = Path(tempfile.mkdtemp(prefix="bench-serving-direct-"))
        self.runtime = Runtime(
            Settings(data_dir=data, output_dir=data / "out", threads=1, device="cpu")
        )
        self.service = Service(self.runtime)
        self.engine = self.runtime.registry.get("embedded")
        self.steps = steps
        self.seeds = itertools.count(10_000, 7)

    def grid_inputs(self, count: int = IMAGES_PER_JOB) -> list[Any]:
        """`count` engine inputs of the default request, with fresh seeds."""
        from imagineer.prompts import parse

        planning = importlib.import_module("imagineer.service.plan")  # not the function
        grid = planning.plan_request(
            parse(f"{PROMPTS[0]} --seed {next(self.seeds)}"), self.engine.info, steps=self.steps
        )
        first = grid.inputs[0]
        return [dataclasses.replace(first, seed=first.seed + k) for k in range(count)]

    def engine_call(self, count: int = IMAGES_PER_JOB) -> float:
        """Seconds per image of one engine call on `count` images."""
        from imagineer.engines.base import RunControl

        inputs = self.grid_inputs(count)
        started = time.perf_counter()
        self.engine.generate(inputs, RunControl())
        return (time.perf_counter() - started) / count

    def service_call(self) -> float:
        """Seconds per image of one grid through the service: engine + every label."""
        started = time.perf_counter()
        self.service.imagine(f"{PROMPTS[0]} --seed {next(self.seeds)}", steps=self.steps)
        return (time.perf_counter() - started) / IMAGES_PER_JOB

    def close(self) -> None:
        self.runtime.close()


def engine_scan(local: Local, sizes: list[int], threads: list[int], repeats: int) -> list[Timing]:
    """The engine call alone, per image, at each batch size and thread count."""
    import torch

    timings = []
    for count in threads:
        torch.set_num_threads(count)
        for size in sizes:
            local.engine_call(size)  # warm-up: first calls at a new shape are slower
            runs = tuple(local.engine_call(size) for _ in range(repeats))
            label = f"engine call, batch {size}, {count} thread(s), per image"
            timings.append(Timing(label, runs, {"batch": size, "threads": count}))
    torch.set_num_threads(1)
    return timings


def serial(base: str, jobs: int, steps: int | None, seeds: Iterator[int]) -> tuple[float, int]:
    """`jobs` jobs one at a time: (seconds from the first submit to the last end, images)."""
    with httpx.Client(base_url=base, timeout=600) as client:
        started = time.perf_counter()
        for i in range(jobs):
            run_job(client, f"{PROMPTS[i % len(PROMPTS)]} --seed {next(seeds)}", steps)
        return time.perf_counter() - started, jobs * IMAGES_PER_JOB


def interleaved(local: Local, base: str, rounds: int) -> list[Round]:
    """`rounds` times: the bare engine call, the in-process service call, one served job."""
    found = []
    with httpx.Client(base_url=base, timeout=600) as client:
        for i in range(rounds):
            engine_s = local.engine_call()
            service_s = local.service_call()
            served = run_job(client, f"{PROMPTS[i % len(PROMPTS)]} --seed {i + 1}", local.steps)
            found.append(Round(engine_s, service_s, served))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--serial-jobs", type=int, default=6, help="jobs per one-at-a-time block")
    parser.add_argument("--concurrent-jobs", type=int, default=16, help="jobs per crowd block")
    parser.add_argument("--blocks", type=int, default=2, help="one-at-a-time + crowd blocks")
    parser.add_argument(
        "--batches", default="1,4", help="jobs per engine batch to compare, comma-separated"
    )
    parser.add_argument("--steps", type=int, default=None, help="default: the engine's")
    parser.add_argument("--scan", default="1,4,8,16", help="engine batch sizes; '' to skip")
    parser.add_argument("--scan-threads", default="1", help="torch threads for the scan")
    parser.add_argument("--scan-repeats", type=int, default=2)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    report = Report("serving")
    load_before = os.getloadavg()
    local = Local(args.steps)
    local.service_call()  # warm-up: loads the engine and makes the signing identity
    scan = []
    if args.scan:
        sizes = [int(s) for s in args.scan.split(",")]
        threads = [int(t) for t in args.scan_threads.split(",")]
        scan = engine_scan(local, sizes, threads, args.scan_repeats)
    seeds = itertools.count(100)
    rounds: list[Round] = []
    blocks: dict[int, Blocks] = {}
    for batch in batches:
        data_dir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
        with running_server(data_dir, batch) as base:
            with httpx.Client(base_url=base, timeout=600) as client:  # warm-up: loads the engine
                run_job(client, f"{PROMPTS[0]} --seed {next(seeds)}", args.steps)
            if not rounds:
                rounds = interleaved(local, base, args.serial_jobs)
            found = blocks[batch] = Blocks()
            for _ in range(args.blocks):
                found.add_serial(*serial(base, args.serial_jobs, args.steps, seeds))
                wall, runs = concurrent(base, args.clients, args.concurrent_jobs, args.steps, seeds)
                found.add_crowd(wall, len(runs) * IMAGES_PER_JOB)
    local.close()
    for timing in scan:
        report.add(timing)
    context = _overhead(report, rounds)
    per_s = _throughput(report, blocks, args.clients)
    report.context.update(
        {
            "clients": args.clients,
            "serial_jobs": len(rounds),
            "concurrent_jobs": args.concurrent_jobs,
            "images_per_s": per_s,
            **context,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "note": "one of the CPU's cores runs a training process throughout; run under nice",
        }
    )
    report.finish()
    print("images/s: " + ", ".join(f"{k} {v:.3f}" for k, v in per_s.items()))
    print(
        f"overhead per image at concurrency 1: {context['overhead_vs_engine']:+.1%} of the job's "
        f"engine time ({context['engine_s'] * 1e3:.0f} ms): labelling "
        f"{context['provenance_overhead_vs_engine']:.1%}, server+queue "
        f"{context['server_and_queue_overhead_vs_engine']:.1%}, route "
        f"{context['route_overhead_vs_engine']:.1%}; against the bare engine call in this "
        f"process {context['overhead_vs_bare_engine']:+.1%} (its engine ran "
        f"{context['in_job_generate_vs_bare_engine']:+.1%} vs bare)"
    )


def _overhead(report: Report, rounds: list[Round]) -> dict[str, float]:
    """(b) the overhead at concurrency 1, per image, from the interleaved rounds.

    The denominator is the engine's time inside each served job (its `generate_s`): the same
    process and moment as the latency. The bare call in this process is reported beside it;
    it differs by a few percent either way with the two processes' load and memory.
    """
    jobs = [r.served for r in rounds]
    engine_t = report.add(
        Timing("engine time in the served job, per image", per_image(j.generate_s for j in jobs))
    )
    bare_t = report.add(Timing("bare engine call, per image", tuple(r.engine_s for r in rounds)))
    service_t = report.add(
        Timing("engine + provenance in-process, per image", tuple(r.service_s for r in rounds))
    )
    served_t = report.add(
        Timing("server job at concurrency 1, per image", per_image(j.latency_s for j in jobs))
    )
    report.add_ratio(served_t, engine_t)
    report.add_ratio(served_t, bare_t)
    report.add_ratio(service_t, bare_t)
    engine = engine_t.median_s
    save = _median([j.save_s for j in jobs]) / IMAGES_PER_JOB
    route = _median([j.route_s for j in jobs]) / IMAGES_PER_JOB
    queue = _median([j.latency_s - j.generate_s - j.save_s - j.route_s for j in jobs])
    return {
        "engine_s": engine,
        "overhead_vs_engine": _median([(j.latency_s - j.generate_s) / j.generate_s for j in jobs]),
        "overhead_vs_bare_engine": (served_t.median_s - bare_t.median_s) / bare_t.median_s,
        "provenance_overhead_vs_engine": _median([j.save_s / j.generate_s for j in jobs]),
        "server_and_queue_overhead_vs_engine": queue / IMAGES_PER_JOB / engine,
        "route_overhead_vs_engine": route / engine,
        "provenance_in_process_vs_bare_engine": (service_t.median_s - bare_t.median_s)
        / bare_t.median_s,
        "in_job_generate_vs_bare_engine": (engine - bare_t.median_s) / bare_t.median_s,
        "save_s_per_image": save,
    }


def per_image(seconds: Iterable[float]) -> tuple[float, ...]:
    return tuple(s / IMAGES_PER_JOB for s in seconds)


@dataclass
class Blocks:
    """Alternating blocks of one server: jobs one at a time, then a crowd of clients."""

    serial_s: float = 0.0
    serial_images: int = 0
    crowd_s: float = 0.0
    crowd_images: int = 0

    def add_serial(self, seconds: float, images: int) -> None:
        self.serial_s += seconds
        self.serial_images += images

    def add_crowd(self, seconds: float, images: int) -> None:
        self.crowd_s += seconds
        self.crowd_images += images


def _throughput(report: Report, blocks: dict[int, Blocks], clients: int) -> dict[str, float]:
    """(a) seconds per image (the inverse of images/s), one at a time vs many at once, from
    blocks that alternated on the same server; batch b's crowd is also compared with the
    first server's one-at-a-time blocks (the best way to serve one client at a time)."""
    per_s: dict[str, float] = {}
    reference: Timing | None = None
    for batch, found in blocks.items():
        one = report.add(
            Timing(
                f"one client at a time, batch {batch}, s/image",
                (found.serial_s / found.serial_images,),
            )
        )
        crowd = report.add(
            Timing(
                f"{clients} concurrent clients, batch {batch}, s/image",
                (found.crowd_s / found.crowd_images,),
            )
        )
        reference = reference or one
        report.add_ratio(one, crowd)
        if reference is not one:
            report.add_ratio(reference, crowd)
        per_s[f"one_at_a_time_batch_{batch}"] = 1 / one.median_s
        per_s[f"{clients}_clients_batch_{batch}"] = 1 / crowd.median_s
    return per_s


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


if __name__ == "__main__":
    main()
