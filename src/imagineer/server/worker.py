"""The server's worker thread and worker processes apart from it, both stopping gracefully."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from imagineer.jobs.worker import WorkerThread
from imagineer.service import Service

SHUTDOWN_REASON = "the server shut down while the job ran; it was put back in the queue"


class InProcessWorker:
    """Runs queued jobs through the service in a daemon thread of the server, batching
    compatible jobs (up to max_batch, waiting batch_window_s for a batch to fill)."""

    def __init__(
        self,
        service: Service,
        *,
        poll_interval_s: float,
        heartbeat_s: float,
        max_batch: int | None = None,
        batch_window_s: float = 0.05,
    ) -> None:
        self.worker_id = f"server-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        worker = service.worker(
            self.worker_id,
            poll_interval=poll_interval_s,
            heartbeat_interval=heartbeat_s,
            max_batch=max_batch or default_batch_jobs(service.runtime.settings.device),
            batch_window_s=batch_window_s,
        )
        self._thread = WorkerThread(worker)

    @property
    def alive(self) -> bool:
        return self._thread.alive

    def wake(self) -> None:
        """A job was queued: look now, not at the next poll."""
        self._thread.worker.wake()

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace_s: float) -> list[str]:
        """Take no new jobs; wait up to grace_s for the ones under way, else requeue them.

        Returns the ids of the jobs put back in the queue. A requeued job's thread notices at
        its next step (its heartbeat is refused) and stops; its outcome is dropped.
        """
        return self._thread.stop(grace_s, SHUTDOWN_REASON)

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end; True when it has."""
        return self._thread.join(timeout_s)


def default_batch_jobs(device: str) -> int:
    """Jobs per engine batch when none is set: 4 on a GPU, where a batch costs about what one
    item does; 1 on a CPU, where a job's grid is already a batch of 4 and more gain little
    (bench/bench_serving.py, embedded model on one thread: 401 ms an image at 4 images,
    387 at 8, 405 at 16) while a batch that is not full waits batch_window_s for mates."""
    from imagineer.runtime import resolve_device

    return 4 if resolve_device(device).startswith("cuda") else 1


WORKER_SHUTDOWN_REASON = "its worker process was stopped; it was put back in the queue"


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker process (`imagineer jobs work`) runs."""

    worker_id: str | None = None  # None: host name, process id and a random suffix
    poll_interval_s: float = 0.2  # how often an idle worker looks for queued jobs
    heartbeat_s: float = 1.0  # how often running jobs' progress reaches the store
    stale_after_s: float | None = None  # None: the larger of 30 s and ten heartbeats
    batch_jobs: int | None = None  # compatible imagine jobs per engine batch; None: by device
    batch_window_s: float = 0.05  # how long a batch that is not full waits for more jobs
    grace_s: float = 30.0  # on SIGTERM/Ctrl-C: wait this long for running jobs, then requeue
    webhooks: bool = True  # also deliver webhook events

    def name(self) -> str:
        return self.worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def serve_worker(
    service: Service,
    options: WorkerOptions,
    *,
    stop: threading.Event | None = None,
    on_start: Callable[[str], None] | None = None,
) -> list[str]:
    """Run a worker process until SIGTERM, SIGINT or `stop`: then finish the jobs under way
    within options.grace_s, or put them back in the queue. Returns the ids requeued."""
    from imagineer.server.webhooks import DispatcherThread, WebhookDispatcher, master_secret

    name = options.name()
    worker = service.worker(
        name,
        poll_interval=options.poll_interval_s,
        heartbeat_interval=options.heartbeat_s,
        stale_after_s=options.stale_after_s,
        max_batch=options.batch_jobs or default_batch_jobs(service.runtime.settings.device),
        batch_window_s=options.batch_window_s,
    )
    thread = WorkerThread(worker)
    dispatcher = None
    if options.webhooks:
        settings = service.runtime.settings
        master = master_secret(settings)
        dispatcher = DispatcherThread(
            WebhookDispatcher(
                service.runtime.store, master, allow_private=settings.webhook_allow_private
            )
        )
    stop = stop or threading.Event()
    previous = _on_signals(stop)
    try:
        thread.start()
        if dispatcher is not None:
            dispatcher.start()
        if on_start is not None:
            on_start(name)
        while not stop.is_set() and thread.alive:
            stop.wait(0.5)
        return thread.stop(options.grace_s, WORKER_SHUTDOWN_REASON)
    finally:
        if dispatcher is not None:
            dispatcher.stop()
        _restore_signals(previous)


def _on_signals(stop: threading.Event) -> dict[int, object]:
    """SIGTERM and SIGINT set `stop` (only the main thread may install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, object] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda _signum, _frame: stop.set())
    return previous


def _restore_signals(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
