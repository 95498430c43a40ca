"""Webhooks: a signed JSON event when a job ends, delivered from the store's outbox with retries.

Events follow the Standard Webhooks scheme: headers `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. Each user has their own
secret (`whsec_…`), derived from the deployment's master secret, so a user can verify events
meant for them but never forge another user's. docs/api.md shows how to verify one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx
from sqlalchemy.exc import SQLAlchemyError

from imagineer.config import Settings
from imagineer.jobs import Job, JobNotFound, JobStore, WebhookDelivery
from imagineer.server.egress import Resolver, resolve, webhook_transport

logger = logging.getLogger(__name__)

SECRET_PREFIX: Final = "whsec_"
SECRET_FILE: Final = "webhook_secret"  # in the data dir, made on first use (mode 0600)
TOLERANCE_S: Final = 300  # a receiver refuses events whose timestamp is further off than this
MAX_URL_LEN: Final = 2048
USER_AGENT: Final = "imagineer-webhooks/1"
_DERIVE: Final = b"imagineer webhook secret\x00"


class InvalidSignature(ValueError):
    """A webhook whose signature or timestamp does not check out: drop it."""


# --- secrets and signatures -------------------------------------------------------------------


def master_secret(settings: Settings) -> bytes:
    """The deployment's master secret: IMAGINEER_WEBHOOK_SECRET, else a random one kept in the
    data dir (worker processes on other machines must then be given the same setting)."""
    if settings.webhook_secret:
        return settings.webhook_secret.encode("utf-8")
    path = settings.data_dir / SECRET_FILE
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        _write_new_secret(path)
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds a secret of {len(secret)} bytes: delete it to make one")
    return secret


def _write_new_secret(path: Path) -> None:
    """Write a fresh secret unless another process wrote one first (O_EXCL)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_urlsafe(48).encode("ascii"))


def user_secret(master: bytes, user_id: str) -> str:
    """The signing secret of one user's webhooks (what GET /v1/webhooks/secret answers)."""
    key = hmac.new(master, _DERIVE + user_id.encode("utf-8"), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header value: "v1," + base64 HMAC-SHA256 of id.timestamp.body."""
    message = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, event_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> None:
    """Check a received webhook; raise InvalidSignature unless it is genuine and recent.

    `headers` must look names up case-insensitively (any HTTP framework's headers do).
    """
    event_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    given = headers.get("webhook-signature")
    if not event_id or not stamp or not given:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature(f"webhook-timestamp {stamp!r} is not a number") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise InvalidSignature(f"webhook-timestamp {timestamp} is too far from now")
    expected = sign(secret, event_id, timestamp, body)
    # The header may list several space-separated signatures (during a secret rotation).
    if not any(hmac.compare_digest(expected, part) for part in given.split()):
        raise InvalidSignature("no signature matches")


def check_url(url: str) -> str:
    """A webhook URL as given, or ValueError saying what to fix (its form only: where it
    points is checked by egress.check_destination, with the server's settings)."""
    if not isinstance(url, str) or len(url) > MAX_URL_LEN:
        raise ValueError(f"webhook_url: use an http(s) URL of at most {MAX_URL_LEN} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"webhook_url={url!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook_url={url!r}: use an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("webhook_url: leave credentials out of the URL; verify the signature")
    if any(ord(c) < 33 for c in url):
        raise ValueError("webhook_url: remove the spaces and control characters")
    return url


# --- delivery ---------------------------------------------------------------------------------

EventBody = Callable[[WebhookDelivery, Job | None], str]


def event_body(delivery: WebhookDelivery, job: Job | None) -> str:
    """The JSON event: {id, type, created_at, data: the job as GET /v1/jobs/{id} shows it}."""
    from imagineer.server.schemas import JobPublic

    # Deleted before the first attempt, or a result of another shape: what the delivery knows.
    data: object = {"id": delivery.job_id, "state": delivery.event.removeprefix("job.")}
    if job is not None:
        try:
            data = JobPublic.from_job(job).model_dump(mode="json")
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("webhook %s: job %s shown in short: %s", delivery.id, job.id, exc)
    event = {
        "id": delivery.id,
        "type": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": data,
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


class WebhookDispatcher:
    """Sends due webhook deliveries and records each attempt; any number of these (one per
    server and worker process) can share a store: each delivery is leased to one at a time.

    Unless allow_private, each connection goes to a public address only, checked when it is
    opened (see egress); a refused address is recorded and retried like any failed attempt.
    """

    def __init__(
        self,
        store: JobStore,
        master: bytes,
        *,
        timeout_s: float = 10.0,
        poll_s: float = 1.0,
        body: EventBody = event_body,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
        allow_private: bool = False,
        resolver: Resolver = resolve,
    ) -> None:
        for name, value in (("timeout_s", timeout_s), ("poll_s", poll_s)):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r}: use a number of seconds > 0")
        self._store, self._master = store, master
        self._timeout_s, self._poll_s = timeout_s, poll_s
        self._body, self._clock = body, clock
        self._transport = transport
        self._allow_private, self._resolver = allow_private, resolver

    def run(self, stop_event: threading.Event) -> None:
        """Deliver until stop_event is set."""
        while not stop_event.is_set():
            try:
                sent = self.deliver_due()
            except SQLAlchemyError as exc:
                logger.warning("webhooks: the store is not answering: %s", exc)
                sent = 0
            if not sent:
                stop_event.wait(self._poll_s)

    def deliver_due(self, limit: int = 10) -> int:
        """One pass: attempt every due delivery (up to limit); how many were attempted."""
        due = self._store.claim_webhooks(limit=limit, lease_s=self._timeout_s + 30)
        if due:
            with self._client() as client:
                for delivery in due:
                    self.attempt(delivery, client)
        return len(due)

    def _client(self) -> httpx.Client:
        # No redirects (a receiver answers 2xx itself) and no proxy settings from the
        # environment: events go straight to the URL the job named.
        transport = self._transport or webhook_transport(
            allow_private=self._allow_private, resolver=self._resolver
        )
        return httpx.Client(
            timeout=self._timeout_s,
            follow_redirects=False,
            transport=transport,
            trust_env=False,
        )

    def attempt(
        self, delivery: WebhookDelivery, client: httpx.Client | None = None
    ) -> WebhookDelivery:
        """POST one delivery, record the attempt (delivered, or retried after a wait)."""
        body = delivery.body if delivery.body is not None else self._render(delivery)
        payload = body.encode("utf-8")
        secret = user_secret(self._master, delivery.user_id)
        headers = signed_headers(secret, delivery.id, int(self._clock()), payload)
        headers["webhook-attempt"] = str(delivery.attempts + 1)
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            if client is None:
                with self._client() as own:
                    response = own.post(delivery.url, content=payload, headers=headers)
            else:
                response = client.post(delivery.url, content=payload, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return self._store.record_webhook_attempt(
            delivery.id,
            delivered=error is None,
            status=status,
            error=error,
            duration_s=time.perf_counter() - started,
            body=body if delivery.body is None else None,
        )

    def _render(self, delivery: WebhookDelivery) -> str:
        try:
            job: Job | None = self._store.get(delivery.job_id)
        except JobNotFound:
            job = None
        return self._body(delivery, job)


class DispatcherThread:
    """A WebhookDispatcher in a daemon thread of a server or worker process."""

    def __init__(self, dispatcher: WebhookDispatcher) -> None:
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start delivering (again, after a stop: an app's lifespan may run more than once)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.dispatcher.run, args=(self._stop,), name="webhooks", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the attempt under way (pending deliveries wait for the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
