"""Test fixtures: a job store on an empty database of each backend (SQLite and PostgreSQL).

Use from a test module with `pytest_plugins = ["job_stores"]`; it brings pg_server's db_url.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imagineer.jobs import JobStore, RetryPolicy

pytest_plugins = ["pg_server"]

NO_WAIT = RetryPolicy(base_s=0.0)  # retries are claimable at once (backoff has its own test)


@pytest.fixture
def store(db_url: str) -> Iterator[JobStore]:
    """A store whose retries wait for nothing, closed after the test."""
    opened = JobStore(db_url, retry=NO_WAIT)
    yield opened
    opened.close()
