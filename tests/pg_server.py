"""Test fixtures: a throw-away PostgreSQL server, and a fresh database on each backend.

Use from a test module with `pytest_plugins = ["pg_server"]`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import psycopg
import pytest

_ENSURE = "scripts/ensure-postgres.sh"
_START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PgServer:
    """A running PostgreSQL server with trust authentication on 127.0.0.1."""

    port: int
    user: str

    def create_schema(self, name: str) -> str:
        """An empty schema in the 'tests' database; the URL puts it first on the search path."""
        with psycopg.connect(_conninfo(self.port, self.user, "tests"), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        options = quote(f"-csearch_path={name}")
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/tests?options={options}"

    def empty_schema(self, name: str) -> None:
        """Delete every row of every table in the schema, keeping the tables."""
        with psycopg.connect(_conninfo(self.port, self.user, "tests"), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (name,)
            ).fetchall()
            # DELETE beats TRUNCATE on tiny tables (ms vs tens of ms); replica mode skips FKs.
            conn.execute("SET session_replication_role = replica")
            for (table,) in rows:
                conn.execute(f'DELETE FROM "{name}"."{table}"')


def _conninfo(port: int, user: str, database: str = "postgres") -> str:
    return f"host=127.0.0.1 port={port} user={user} dbname={database} connect_timeout=2"


def _find_bin_dir() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def _missing(reason: str) -> NoReturn:
    message = f"{reason}; run {_ENSURE} to install PostgreSQL"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _server_user() -> str | None:
    """The user to run PostgreSQL as: 'postgres' when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _missing("running as root and there is no 'postgres' user to run PostgreSQL as")
    return "postgres"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], port: int, user: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    conninfo = _conninfo(port, user)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {proc.returncode} while starting")
        try:
            psycopg.connect(conninfo).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _start(bin_dir: Path, base: Path) -> tuple[subprocess.Popen[bytes], PgServer]:
    data, sockets, user = base / "data", base / "sock", "postgres"
    sockets.mkdir()
    run_as = _server_user()
    if run_as is not None:
        shutil.chown(base, run_as)
        shutil.chown(sockets, run_as)
    groups: list[int] | None = None if run_as is None else []
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8"]
    initdb += ["--no-sync", "--no-instructions"]
    done = subprocess.run(
        initdb, capture_output=True, text=True, user=run_as, group=run_as, extra_groups=groups
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()}")
    port = _free_port()
    argv = [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-k", str(sockets)]
    # A test server: durability off, speed on.
    for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
        argv += ["-c", setting]
    with (base / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=run_as,
            group=run_as,
            extra_groups=groups,
        )
    try:
        _wait_ready(proc, port, user)
        with psycopg.connect(_conninfo(port, user), autocommit=True) as conn:
            conn.execute("CREATE DATABASE tests")
    except Exception:
        proc.kill()
        proc.wait()
        raise
    return proc, PgServer(port=port, user=user)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of its own in a temp dir, stopped and removed at session end."""
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        _missing("PostgreSQL's initdb was not found")
    # Not pytest's tmp_path: the server user must be able to reach the folder.
    base = Path(tempfile.mkdtemp(prefix="pg-test-"))
    try:
        proc, server = _start(bin_dir, base)
        try:
            yield server
        finally:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: end sessions, no checkpoint wait
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_test_url(pg_server: PgServer) -> str:
    """A schema of the test server shared by the session's tests, emptied before each."""
    return pg_server.create_schema("shared")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a new SQLite file, or the test server with no rows."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    url: str = request.getfixturevalue("pg_test_url")
    server: PgServer = request.getfixturevalue("pg_server")
    server.empty_schema("shared")  # milliseconds, where a fresh schema + DDL costs 0.1 s
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def new_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database with no tables yet: a new SQLite file, or a new schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'new.sqlite3'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_schema(f"new_{time.monotonic_ns()}")
