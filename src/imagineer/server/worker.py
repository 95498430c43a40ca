"""The server's in-process worker thread, with a graceful stop: finish the job, or requeue it."""

from __future__ import annotations

import os
import secrets
import socket

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
        max_batch: int = 4,
        batch_window_s: float = 0.05,
    ) -> None:
        self.worker_id = f"server-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        worker = service.worker(
            self.worker_id,
            poll_interval=poll_interval_s,
            heartbeat_interval=heartbeat_s,
            max_batch=max_batch,
            batch_window_s=batch_window_s,
        )
        self._thread = WorkerThread(worker)

    @property
    def alive(self) -> bool:
        return self._thread.alive

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
