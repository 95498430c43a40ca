"""schemathesis against the app's own OpenAPI spec, in-process: no generated request gets a 5xx."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from imagineer.server.app import create_app
from imagineer.server.options import ServerOptions
from test_service import DENY_POLICY, make_runtime, quiet_settings

EXAMPLES = 12  # per operation: bounded, so the whole spec runs in about a minute


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    """The app with a worker over the tiny engine (OpenAI-style routes wait for their jobs),
    steps capped low so generated requests stay cheap, and an API key for the calls."""
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    policy = tmp / "policy.toml"
    policy.write_text(DENY_POLICY)
    settings_ = quiet_settings(tmp, policy_file=policy)
    runtime = make_runtime(settings_)
    options = ServerOptions(
        worker=True,
        max_steps=2,
        rate_per_s=1e6,
        rate_burst=10**6,
        jobs_per_day=None,
        poll_interval_s=0.02,
        heartbeat_s=0.1,
        events_poll_s=0.05,
        sync_timeout_s=300,
        shutdown_grace_s=60,
    )
    app = create_app(dataclasses.replace(settings_), runtime=runtime, options=options)
    key = app.state.server.keys.create("fuzz").secret
    yield app, {"Authorization": f"Bearer {key}"}  # each call runs the app's lifespan
    runtime.close()


def test_no_request_gets_a_server_error(served: tuple[FastAPI, dict[str, str]]) -> None:
    """Valid requests (positive) and requests that break the schema (negative), every
    operation; all failures are reported together."""
    app, auth = served
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 15, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = _fuzz(operation, mode, auth)
            if failure is not None:
                failures.append(f"{operation.label} ({mode.value}): {failure}")
    assert not failures, "\n\n".join(failures)


def _fuzz(
    operation: schemathesis.APIOperation, mode: GenerationMode, auth: dict[str, str]
) -> str | None:
    """Call one operation with generated requests; what went wrong, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=(Phase.explicit, Phase.generate),  # report, do not minimise
    )
    def call(case: schemathesis.Case) -> None:
        response = case.call(headers=auth)
        case.validate_response(response, checks=(not_a_server_error,))

    try:
        call()
    except Unsatisfiable:  # nothing to break: an operation without parameters
        return None
    except Exception as exc:
        return str(exc)[:2000]
    return None
