"""The server's in-process worker thread, with a graceful stop: finish the job, or requeue it."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from imagineer.jobs import JobError, JobState, JobStore, Worker
from imagineer.service import Service

logger = logging.getLogger(__name__)

SHUTDOWN_REASON = "the server shut down while the job ran; it was put back in the queue"


class InProcessWorker:
    """Runs queued jobs through the service in a daemon thread of the server."""

    def __init__(self, service: Service, *, poll_interval_s: float, heartbeat_s: float) -> None:
        self.worker_id = f"server-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._store: JobStore = service.runtime.store
        self._worker = Worker(
            self._store,
            service.run_job,
            worker_id=self.worker_id,
            poll_interval=poll_interval_s,
            heartbeat_interval=heartbeat_s,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._worker.run, args=(self._stop,), name=self.worker_id, daemon=True
        )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace_s: float) -> list[str]:
        """Take no new jobs; wait up to grace_s for the one under way, else requeue it.

        Returns the ids of the jobs put back in the queue. A requeued job's thread notices at
        its next step (its heartbeat is refused) and stops; its outcome is dropped.
        """
        self._stop.set()
        self._thread.join(grace_s)
        if not self._thread.is_alive():
            return []
        requeued = []
        for job in self._store.list(state=JobState.RUNNING, limit=1000):
            if job.worker_id != self.worker_id:
                continue
            try:
                after = self._store.fail(job.id, self.worker_id, SHUTDOWN_REASON)
            except JobError as exc:  # it finished or was taken over meanwhile
                logger.info("job %s not requeued: %s", job.id, exc)
                continue
            if after.state is JobState.QUEUED:
                requeued.append(job.id)
        return requeued

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end; True when it has."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
