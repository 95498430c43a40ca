"""How the HTTP server behaves: its address, the in-process worker and per-key limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class ServerOptions:
    """The server's own settings (the process-wide ones stay in imagineer.config.Settings)."""

    host: str = "127.0.0.1"  # the address served on; keyless local mode needs a loopback one
    port: int = 8000
    worker: bool = True  # run queued jobs in a server thread; False: `imagineer jobs work` does
    poll_interval_s: float = 0.2  # how often the in-process worker looks for queued jobs
    # Compatible imagine jobs the in-process worker runs in one engine batch; None: 4 on a GPU,
    # 1 on a CPU (where bigger batches gain a few percent at most: bench/bench_serving.py).
    batch_jobs: int | None = None
    batch_window_s: float = 0.05  # how long a batch that is not full waits for more jobs
    webhooks: bool = True  # deliver webhook events from this process (as workers also do)
    heartbeat_s: float = 0.5  # how often a running job's progress reaches the store (and SSE)
    shutdown_grace_s: float = 30.0  # wait this long for a running job at shutdown, then requeue
    rate_per_s: float = 10.0  # requests per second each key may make, on average
    rate_burst: int = 60  # requests a key may make at once after a quiet spell
    jobs_per_day: int | None = 1000  # jobs each user may create per UTC day; None: no quota
    max_steps: int = 200  # the most sampling steps one request may ask for
    max_upload_bytes: int = 20 * 1024 * 1024  # the largest image accepted by upload routes
    sync_timeout_s: float = 600.0  # how long an OpenAI-style call waits for its images
    url_ttl_s: int = 3600  # how long a signed media URL (response_format "url") stays valid
    events_poll_s: float = 0.25  # how often the event stream reads the job's progress
    media_dir: Path | None = None  # outputs and uploads; None: media/ in Settings.data_dir

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError(f"host={self.host!r}: give an address such as 127.0.0.1")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port={self.port!r}: use a port number from 0 to 65535")
        for f in fields(self):
            value = getattr(self, f.name)
            timed = f.name.endswith("_s")
            if timed and (
                not isinstance(value, int | float) or not math.isfinite(value) or value <= 0
            ):
                raise ValueError(f"{f.name}={value!r}: use a number of seconds > 0")
        for name in ("rate_burst", "max_steps", "max_upload_bytes", "url_ttl_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: use a whole number >= 1")
        batch = self.batch_jobs
        if batch is not None and (
            isinstance(batch, bool) or not isinstance(batch, int) or batch < 1
        ):
            raise ValueError(f"batch_jobs={batch!r}: use a whole number >= 1, or None")
        quota = self.jobs_per_day
        if quota is not None and (
            isinstance(quota, bool) or not isinstance(quota, int) or quota < 1
        ):
            raise ValueError(f"jobs_per_day={quota!r}: use a whole number >= 1, or None")

    @property
    def loopback(self) -> bool:
        """True when the server only listens on this machine."""
        return self.host in LOOPBACK_HOSTS
