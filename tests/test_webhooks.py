"""Webhooks: signatures, the outbox and retries, against a real receiver on 127.0.0.1 (which
the tests allow: a server refuses internal addresses unless its settings say otherwise)."""

from __future__ import annotations

import json
import re
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
from imagineer.server.egress import ForbiddenDestination, check_destination
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
from server_apps import LOCAL
from test_server import Make, make_app, new_key  # noqa: F401 - fixtures

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
    dispatcher = WebhookDispatcher(store, master, timeout_s=5, allow_private=True)
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
    dispatcher = WebhookDispatcher(store, b"k" * 48, timeout_s=2, allow_private=True)
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
    app, runtime = make_app(worker=True, settings={"webhook_allow_private": True})
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


# --- where webhooks may go (no SSRF) -------------------------------------------------------------

INTERNAL = [
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://localhost/hook", "localhost resolves to 127.0.0.1, which is a loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("https://172.16.0.1/hook", "private"),
    ("http://192.168.1.20:8080/hook", "private"),
    ("http://[fd00::1]/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # a cloud's metadata service
    ("http://[fe80::1]/hook", "link-local"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4 inside IPv6
    ("http://[64:ff9b::a9fe:a9fe]/hook", "link-local"),  # 169.254.169.254 through NAT64
    ("http://100.64.0.1/hook", "non-public"),
]


def test_internal_addresses_are_refused_unless_allowed() -> None:
    for url, why in INTERNAL:
        with pytest.raises(ForbiddenDestination, match=re.escape(why)):
            check_destination(url, allow_private=False)
        check_destination(url, allow_private=True)  # the operator's choice

    def names(host: str, port: int) -> list[str]:
        table = {"hooks.example": ["93.184.216.34"], "split.example": ["93.184.216.34", "10.0.0.7"]}
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]

    check_destination("https://hooks.example/in", allow_private=False, resolver=names)
    check_destination("http://93.184.216.34/in", allow_private=False, resolver=names)
    check_destination("http://[2606:4700::1111]/in", allow_private=False, resolver=names)
    # one internal address among public ones is enough to refuse the name
    with pytest.raises(
        ForbiddenDestination, match=re.escape("resolves to 10.0.0.7, which is a private")
    ):
        check_destination("https://split.example/in", allow_private=False, resolver=names)
    with pytest.raises(ForbiddenDestination, match="does not resolve"):
        check_destination("https://nowhere.example/in", allow_private=False, resolver=names)


def test_api_refuses_internal_webhook_urls_with_a_422_and_queues_nothing(
    make_app: Make,  # noqa: F811 - the fixture imported above
) -> None:
    app, _ = make_app()
    with TestClient(app, client=LOCAL) as client:
        for url, why in INTERNAL:
            answer = client.post("/v1/jobs", json={"prompt": "a fox", "webhook_url": url})
            assert answer.status_code == 422, (url, answer.text)
            error = answer.json()["error"]
            assert (error["param"], error["code"]) == ("webhook_url", "webhook_url_refused")
            assert why in error["message"] and "public" in error["message"], error
        assert client.get("/v1/jobs").json()["data"] == []
        created = client.post(
            "/v1/videos/reel", json={"prompt": "hills", "webhook_url": INTERNAL[0][0]}
        )
        assert created.status_code == 422  # every route that takes a webhook_url checks it


def test_delivery_checks_the_address_again_and_refuses_an_internal_one(
    store: JobStore, receiver: Callable[..., Receiver]
) -> None:
    """A job whose host resolved to a public address when it was made, and to 127.0.0.1 when
    its event is due (DNS rebinding), is not delivered; the attempt says why and is retried."""
    master = b"k" * 48
    hook = receiver(user_secret(master, "alice"))
    port = int(hook.url.rsplit(":", 1)[1].split("/")[0])
    answers = {"hooks.example": ["93.184.216.34"]}

    def dns(host: str, _port: int) -> list[str]:
        return answers[host]

    url = f"http://hooks.example:{port}/hook"
    check_destination(url, allow_private=False, resolver=dns)  # what creating the job checked
    answers["hooks.example"] = ["127.0.0.1"]  # the name now points inside
    rebound = store.submit("imagine", {}, user_id="alice", webhook_url=url)
    direct = store.submit("imagine", {}, user_id="alice", webhook_url=hook.url)
    store.cancel(rebound.id)
    store.cancel(direct.id)
    guarded = WebhookDispatcher(store, master, timeout_s=2, resolver=dns)
    assert guarded.deliver_due() == 2
    for job, why in [(rebound, "hooks.example resolves to 127.0.0.1"), (direct, "127.0.0.1 is")]:
        (delivery,) = store.webhooks(job_id=job.id)
        assert delivery.state is WebhookState.PENDING and delivery.attempts == 1
        assert delivery.last_status is None and delivery.last_error is not None
        assert why in delivery.last_error and "loopback" in delivery.last_error
    assert hook.got == []  # the receiver listens there: the guard, not the network, said no
    # The same deliveries go through once the operator allows internal addresses.
    allowed = WebhookDispatcher(store, master, timeout_s=2, allow_private=True)
    _deliver_until(allowed, lambda: len(hook.got) == 1)
    (delivery,) = store.webhooks(job_id=direct.id)
    assert delivery.state is WebhookState.DELIVERED and delivery.attempts == 2
