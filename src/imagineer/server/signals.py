"""Wake-ups for requests that wait on jobs: the store says which job changed, waiters wake.

An event stream or a synchronous OpenAI-style call waits on its jobs with `watching`; every
change this process makes to them (its worker's progress and results, a cancel) wakes it at
once. Changes made by other worker processes are not seen here, so waiters still read the
store every so often as well.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Event]


class JobSignals:
    """Per-job wake-ups, set from any thread and awaited on the server's event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[_Waiter]] = {}

    def changed(self, job_id: str) -> None:
        """Wake everyone watching `job_id` (the store calls this, from any thread)."""
        with self._lock:
            waiters = list(self._waiters.get(job_id, ()))
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    @contextmanager
    def watching(self, job_ids: Iterable[str]) -> Iterator[asyncio.Event]:
        """An event set on every change to one of `job_ids` while the block runs. Read the
        store, then `wait_for_change` (which clears it): a change during the read is kept."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        ids = list(dict.fromkeys(job_ids))
        with self._lock:
            for job_id in ids:
                self._waiters.setdefault(job_id, set()).add(waiter)
        try:
            yield event
        finally:
            with self._lock:
                for job_id in ids:
                    left = self._waiters.get(job_id)
                    if left is not None:
                        left.discard(waiter)
                        if not left:
                            del self._waiters[job_id]

    @property
    def watched(self) -> int:
        """How many jobs have a waiter now."""
        with self._lock:
            return len(self._waiters)


async def wait_for_change(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set (True, and it is cleared) or `timeout_s` passes (False)."""
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        return False
    event.clear()
    return True
