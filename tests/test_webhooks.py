"""Webhooks: signatures, the outbox and retries, against a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imagineer.jobs import JobState, JobStore, RetryPolicy, WebhookState
from imagineer.server.webhooks import (
    InvalidSignature,
    WebhookDispatcher,
    check_url,
    master_secret,
    sign,
    signed_headers,
    user_secret,
    verify,
)
from test_server import LOCAL, Make, make_app, new_key  # noqa: F401 - fixtures

pytest_plugins = ["pg_server"]

QUICK = RetryPolicy(base_s=0.05, factor=2.0, cap_s=0.2, jitter=0.0)  # retries in milliseconds


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: str  # "ok", or why the signature did not check out


@dataclass
class Receiver:
    """A tiny HTTP server that checks each event's signature and fails the first few."""

    secret: str
    fail_first: int = 0
    got: list[Received] = field(default_factory=list)
    url: str = ""

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        try:
            verify(self.secret, headers, body)
            verified = "ok"
        except InvalidSignature as exc:
            verified = str(exc)
        self.got.append(Received(headers, body, verified))
        return 500 if len(self.got) <= self.fail_first else 204


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(secret: str, fail_first: int = 0) -> Receiver:
        state = Receiver(secret, fail_first)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                self.send_response(state.handle(headers, body))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def store(db_url: str) -> Iterator[JobStore]:
    opened = JobStore(db_url, webhook_retry=QUICK, webhook_attempts=4)
    yield opened
    opened.close()


def _deliver_until(dispatcher: WebhookDispatcher, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, "deliveries did not finish in 30 s"
        if not dispatcher.deliver_due():
            time.sleep(0.02)


# --- signatures ------------------------------------------------------------------------------


def test_signature_round_trip_and_what_breaks_it() -> None:
    secret = user_secret(b"m" * 48, "alice")
    assert secret.startswith("whsec_") and secret == user_secret(b"m" * 48, "alice")
    assert secret != user_secret(b"m" * 48, "bob")  # one user cannot forge another's events
    body = b'{"type":"job.done"}'
    headers = signed_headers(secret, "evt_1", 1_700_000_000, body)
    verify(secret, headers, body, now=1_700_000_100)
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify(secret, headers, body + b" ", now=1_700_000_100)
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify(user_secret(b"m" * 48, "bob"), headers, body, now=1_700_000_100)
    with pytest.raises(InvalidSignature, match="too far"):
        verify(secret, headers, body, now=1_700_000_000 + 301)
    with pytest.raises(InvalidSignature, match="missing"):
        verify(secret, {}, body)
    # Several signatures (a rotation): any one that matches will do.
    rotated = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    verify(secret, rotated, body, now=1_700_000_000)
    assert sign(secret, "evt_1", 1_700_000_000, body) == headers["webhook-signature"]


def test_webhook_urls_are_checked() -> None:
    assert check_url("https://example.org/hook?x=1") == "https://example.org/hook?x=1"
    for bad, why in [
        ("ftp://example.org/", "http"),
        ("https://", "host"),
        ("https://user:pw@example.org/", "credentials"),
        ("https://example.org/a b", "spaces"),
        ("https://example.org:99999/", "not a URL"),
        ("https://e.org/" + "a" * 3000, "2048"),
    ]:
        with pytest.raises(ValueError, match=why):
            check_url(bad)


def test_master_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    from test_service import quiet_settings

    settings = quiet_settings(tmp_path)
    first = master_secret(settings)
    assert first == master_secret(settings) and len(first) >= 32
    assert (settings.data_dir / "webhook_secret").stat().st_mode & 0o777 == 0o600
    given = quiet_settings(tmp_path, webhook_secret="s" * 40)
    assert master_secret(given) == b"s" * 40


# --- the outbox and retries ------------------------------------------------------------------


def test_a_job_end_is_delivered_signed_after_failed_attempts(
    store: JobStore, receiver: Callable[..., Receiver]
) -> None:
    master = b"k" * 48
    hook = receiver(user_secret(master, "alice"), fail_first=2)
    job = store.submit("imagine", {"prompt": "a fox"}, user_id="alice", webhook_url=hook.url)
    quiet = store.submit("imagine", {"prompt": "no hook"}, user_id="alice")
    for _ in (job, quiet):
        claimed = store.claim("w1")
        assert claimed is not None
        store.complete(claimed.id, "w1", {"n": 1}, attempt=claimed.attempts)
    dispatcher = WebhookDispatcher(store, master, timeout_s=5)
    _deliver_until(dispatcher, lambda: len(hook.got) == 3)
    (delivery,) = store.webhooks(job_id=job.id)
    assert delivery.state is WebhookState.DELIVERED and delivery.attempts == 3
    assert [a.status for a in delivery.log] == [500, 500, 204]
    assert delivery.log[0].error == "the receiver answered 500" and delivery.log[2].error is None
    assert all(r.verified == "ok" for r in hook.got), [r.verified for r in hook.got]
    # Every attempt sends the same event: same id, same bytes; the attempt number grows.
    assert {r.headers["webhook-id"] for r in hook.got} == {delivery.id}
    assert len({r.body for r in hook.got}) == 1
    assert [r.headers["webhook-attempt"] for r in hook.got] == ["1", "2", "3"]
    event = json.loads(hook.got[0].body)
    assert (event["id"], event["type"]) == (delivery.id, "job.done")
    assert event["data"]["id"] == job.id and event["data"]["state"] == "done"
    assert store.webhooks(job_id=quiet.id) == []
    assert dispatcher.deliver_due() == 0  # nothing left to send


def test_retries_wait_longer_each_time_and_then_give_up(db_url: str) -> None:
    now = [1_000.0]
    from datetime import UTC, datetime

    def clock() -> datetime:
        return datetime.fromtimestamp(now[0], UTC)

    policy = RetryPolicy(base_s=10, factor=3, cap_s=60, jitter=0)
    with JobStore(db_url, clock=clock, webhook_retry=policy, webhook_attempts=3) as store:
        job = store.submit("imagine", {}, webhook_url="http://127.0.0.1:9/hook")
        store.cancel(job.id)  # a queued job's cancel is an end too
        waits = []
        for _ in range(3):
            (due,) = store.claim_webhooks(lease_s=5)
            assert due.event == "job.cancelled"
            after = store.record_webhook_attempt(
                due.id, delivered=False, status=None, error="refused", duration_s=0.01
            )
            waits.append((after.next_attempt_at - clock()).total_seconds())
            assert store.claim_webhooks() == []  # not due until the wait is over
            now[0] += 61
        assert after.state is WebhookState.FAILED and after.attempts == 3
        assert waits[:2] == [10.0, 30.0]
        assert store.claim_webhooks() == []


def test_an_unreachable_receiver_is_recorded_and_retried(store: JobStore) -> None:
    job = store.submit("imagine", {}, webhook_url="http://127.0.0.1:9/nothing-listens")
    claimed = store.claim("w")
    assert claimed is not None
    store.fail(claimed.id, "w", "engine exploded")  # retried: not an end yet
    assert store.webhooks(job_id=job.id) == []
    dispatcher = WebhookDispatcher(store, b"k" * 48, timeout_s=2)
    store.cancel(job.id)
    _deliver_until(dispatcher, lambda: store.webhooks(job_id=job.id)[0].state.value == "failed")
    (delivery,) = store.webhooks(job_id=job.id)
    assert delivery.attempts == 4 and delivery.last_status is None
    assert delivery.last_error is not None and "Connect" in delivery.last_error


# --- through the HTTP API ------------------------------------------------------------------------


def test_api_job_with_a_webhook_posts_its_end_to_the_receiver(
    make_app: Make,  # noqa: F811 - the fixture imported above
    receiver: Callable[..., Receiver],
) -> None:
    app, runtime = make_app(worker=True)
    with TestClient(app, client=LOCAL) as client:
        secret = client.get("/v1/webhooks/secret").json()["secret"]
        hook = receiver(secret, fail_first=1)
        bad = client.post("/v1/jobs", json={"prompt": "a fox", "webhook_url": "ftp://x/"})
        assert bad.status_code == 422 and "http" in bad.text
        created = client.post(
            "/v1/jobs", json={"prompt": "a red ball --seed 3", "steps": 1, "webhook_url": hook.url}
        ).json()
        assert created["webhook_url"] == hook.url
        deadline = time.monotonic() + 90
        deliveries: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            deliveries = client.get(f"/v1/jobs/{created['id']}/webhooks").json()["data"]
            if deliveries and deliveries[0]["state"] == "delivered":
                break
            time.sleep(0.2)
        assert deliveries and deliveries[0]["state"] == "delivered", deliveries
        assert [a["status"] for a in deliveries[0]["log"]] == [500, 204]
        assert all(r.verified == "ok" for r in hook.got)
        event = json.loads(hook.got[-1].body)
        assert event["type"] == "job.done" and len(event["data"]["result"]["images"]) == 4
        other = new_key(client, "bob")  # bob sees neither alice's deliveries nor her secret
        assert client.get(f"/v1/jobs/{created['id']}/webhooks", headers=other).status_code == 404
        assert client.get("/v1/webhooks/secret", headers=other).json()["secret"] != secret
    assert runtime.store.get(created["id"]).state is JobState.DONE
