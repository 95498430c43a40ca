"""Who is calling: an API key (`Authorization: Bearer` or `X-API-Key`), or local single-user mode.

Local mode (no key, user "local") is open only while the server listens on a loopback address,
the request comes from this machine, and no active key exists: creating the first key ends it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastapi import Request

from imagineer.server.errors import ApiError
from imagineer.server.keys import KeyStore
from imagineer.server.limits import RateLimiter
from imagineer.server.options import LOOPBACK_HOSTS

LOCAL_USER = "local"  # the CLI's default user: its jobs show in `imagineer jobs list`


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    user_id: str
    key_id: str | None  # None in local mode


def presented_key(request: Request) -> str | None:
    """The key the request carries, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    token = request.headers.get("x-api-key", "").strip()
    return token or None


def local_mode(request: Request, keys: KeyStore, *, loopback_bind: bool) -> bool:
    client = request.client.host if request.client is not None else ""
    return loopback_bind and client in LOOPBACK_HOSTS and keys.active_count() == 0


def authenticate(
    request: Request, *, keys: KeyStore, limiter: RateLimiter, loopback_bind: bool
) -> Principal:
    """The request's caller; 401 without a valid key (outside local mode), 429 over the rate."""
    token = presented_key(request)
    key = keys.authenticate(token) if token is not None else None
    if key is not None:
        principal = Principal(key.user_id, key.id)
    elif local_mode(request, keys, loopback_bind=loopback_bind):
        principal = Principal(LOCAL_USER, None)  # any token is ignored: no key exists yet
    elif token is None:
        raise ApiError(
            401,
            "an API key is needed: send `Authorization: Bearer imk_…` or `X-API-Key: imk_…` "
            "(make one with `imagineer keys create --user NAME`)",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    else:
        raise ApiError(
            401,
            "the API key is not valid (unknown or revoked)",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    wait = limiter.wait_s(principal.key_id or LOCAL_USER)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            f"too many requests for this key: retry in {seconds} s",
            code="rate_limited",
            headers={"Retry-After": str(seconds)},
        )
    return principal
