"""API keys: `imk_` secrets of which only a sha256 hash is kept, in a table beside the jobs."""

from __future__ import annotations

import builtins
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, Index, String, create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from imagineer.jobs.models import JobRow, UTCDateTime

KEY_PREFIX = "imk_"
_HINT_LEN = 10  # characters of the secret kept in the clear, so people can tell keys apart
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per key


def _utcnow() -> datetime:
    return datetime.now(UTC)


def hash_secret(secret: str) -> str:
    """The sha256 hex of a key: what the table keeps instead of the key."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class KeysBase(DeclarativeBase):
    pass


class ApiKeyRow(KeysBase):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_user", "user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public: shown, used to revoke
    user_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128), default="")
    hint: Mapped[str] = mapped_column(String(16))  # the key's first characters
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def to_key(self) -> ApiKey:
        return ApiKey(
            id=self.id,
            user_id=self.user_id,
            name=self.name,
            hint=self.hint,
            created_at=self.created_at,
            revoked_at=self.revoked_at,
            last_used_at=self.last_used_at,
        )


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: everything but the secret, which is never stored."""

    id: str
    user_id: str  # the user whose jobs and media the key reaches
    name: str
    hint: str  # e.g. "imk_AbC123…"
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class NewKey:
    """A key just made: the secret is shown this once."""

    key: ApiKey
    secret: str


class KeyNotFound(LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key with id {key_id!r} (see `imagineer keys list`)")


class KeyStore:
    """API keys in the jobs database (same URL), each method one short transaction."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = _open(url)
        self._clock = clock
        _create_table(self._engine)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    def close(self) -> None:
        self._engine.dispose()

    def create(self, user_id: str, *, name: str = "") -> NewKey:
        """A new key for `user_id`; keep the returned secret, it cannot be shown again."""
        user_id = _check("user", user_id, 128, required=True)
        name = _check("name", name, 128, required=False)
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id=secrets.token_hex(8),
            user_id=user_id,
            name=name,
            hint=secret[:_HINT_LEN] + "…",
            secret_hash=hash_secret(secret),
            created_at=self._clock(),
        )
        with self._sessions.begin() as session:
            session.add(row)
        return NewKey(row.to_key(), secret)

    def list(self, *, user_id: str | None = None) -> builtins.list[ApiKey]:
        """Keys oldest first, revoked ones included."""
        stmt = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if user_id is not None:
            stmt = stmt.where(ApiKeyRow.user_id == user_id)
        with self._sessions() as session:
            return [row.to_key() for row in session.scalars(stmt)]

    def revoke(self, key_id: str) -> ApiKey:
        """Stop a key from working (at once, for every server on this database)."""
        with self._sessions.begin() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise KeyNotFound(key_id)
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            return row.to_key()

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None."""
        if not secret.startswith(KEY_PREFIX):
            return None
        stmt = select(ApiKeyRow).where(
            ApiKeyRow.secret_hash == hash_secret(secret), ApiKeyRow.revoked_at.is_(None)
        )
        with self._sessions() as session:
            row = session.scalars(stmt).first()
            if row is None:
                return None
            key = row.to_key()
        now = self._clock()
        if key.last_used_at is None or now - key.last_used_at >= _TOUCH_EVERY:
            with self._sessions.begin() as session:
                found = session.get(ApiKeyRow, key.id)
                if found is not None:
                    found.last_used_at = now
        return key

    def active_count(self) -> int:
        stmt = select(func.count(ApiKeyRow.id)).where(ApiKeyRow.revoked_at.is_(None))
        with self._sessions() as session:
            return int(session.scalar(stmt) or 0)

    def jobs_created_since(self, user_id: str, since: datetime) -> int:
        """How many jobs the user created at or after `since` (read from the jobs table)."""
        stmt = select(func.count(JobRow.id)).where(
            JobRow.user_id == user_id, JobRow.created_at >= since
        )
        with self._sessions() as session:
            return int(session.scalar(stmt) or 0)


def _check(what: str, value: object, max_len: int, *, required: bool) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise ValueError(f"{what}={value!r}: use text of at most {max_len} characters")
    if required and not value.strip():
        raise ValueError(f"{what}={value!r}: must not be empty")
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{what}={value!r}: remove the control characters")
    return value


def _open(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"database URL {url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return create_engine(parsed, connect_args={"timeout": 30})
    return create_engine(parsed, pool_pre_ping=True)


def _create_table(engine: Engine) -> None:
    # The jobs table must exist for the quota count; the job store creates it. Two processes
    # creating api_keys at once: the loser sees "already exists" and tries again, finding it.
    for attempt in range(2):
        try:
            KeysBase.metadata.create_all(engine)
            return
        except (OperationalError, ProgrammingError):
            if attempt:
                raise
