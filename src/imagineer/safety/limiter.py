"""Counts refused prompts per user and blocks users who keep sending them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from imagineer.safety.normalize import normalize
from imagineer.safety.policy import Decision, Policy

RATE_LIMITED = "rate_limited"
# Resolution of the search for when a block ends; the log is only asked for counts.
_RESOLUTION = timedelta(milliseconds=10)


def utc_now() -> datetime:
    return datetime.now(UTC)


class RefusalLog(Protocol):
    """Where refusals are kept (the job store implements this durably)."""

    def record_refusal(
        self, user_id: str, category: str, normalized_prompt: str, message: str
    ) -> None:
        """Store one refusal, stamped with the current time."""
        ...

    def count_refusals(self, user_id: str, since: datetime) -> int:
        """How many refusals of this user are stamped at or after `since`."""
        ...


@dataclass(frozen=True)
class _Refusal:
    user_id: str
    at: datetime
    category: str
    normalized_prompt: str
    message: str


class InMemoryRefusalLog:
    """A RefusalLog in process memory, for tests and single-process use."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._refusals: list[_Refusal] = []

    def record_refusal(
        self, user_id: str, category: str, normalized_prompt: str, message: str
    ) -> None:
        self._refusals.append(
            _Refusal(user_id, self._clock(), category, normalized_prompt, message)
        )

    def count_refusals(self, user_id: str, since: datetime) -> int:
        return sum(1 for r in self._refusals if r.user_id == user_id and r.at >= since)


@dataclass(frozen=True)
class RefusalLimits:
    """`max_refusals` refusals within `window` block a user for `block_for` after the last."""

    max_refusals: int = 5
    window: timedelta = timedelta(minutes=10)
    block_for: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.max_refusals < 1:
            raise ValueError(f"max_refusals must be at least 1, got {self.max_refusals}")
        for name in ("window", "block_for"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be a positive duration, got {getattr(self, name)}")


@dataclass(frozen=True)
class LimitStatus:
    """Whether a user may submit prompts now."""

    blocked: bool
    refusals: int  # refusals in the last `window`
    retry_after: timedelta  # zero when not blocked
    message: str


def _duration_words(duration: timedelta) -> str:
    seconds = max(1, round(duration.total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    if minutes == 0:
        return f"{seconds} s"
    return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"


class RefusalLimiter:
    """Decides when a user is blocked, using only RefusalLog's two methods."""

    def __init__(
        self,
        log: RefusalLog,
        limits: RefusalLimits | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.log = log
        self.limits = limits or RefusalLimits()
        self._clock = clock

    def record(self, user_id: str, decision: Decision) -> LimitStatus:
        """Log the decision if it is a refusal; return the user's status afterwards."""
        if not decision.allowed:
            category = decision.category or "refused"
            self.log.record_refusal(user_id, category, decision.normalized, decision.reason)
        return self.status(user_id)

    def status(self, user_id: str) -> LimitStatus:
        """Blocked when the user's last `max_refusals` refusals fell within `window` and the
        latest is less than `block_for` ago."""
        limits, now = self.limits, self._clock()
        recent = self.log.count_refusals(user_id, now - limits.window)
        horizon = now - limits.window - limits.block_for
        if self.log.count_refusals(user_id, horizon) < limits.max_refusals:
            return LimitStatus(False, recent, timedelta(0), "")
        latest = self._latest_with(user_id, 1, horizon, now)
        kth = self._latest_with(user_id, limits.max_refusals, horizon, now)
        ends = latest + limits.block_for
        if latest - kth > limits.window or ends <= now:
            return LimitStatus(False, recent, timedelta(0), "")
        wait = ends - now
        message = (
            f"rate limited: {limits.max_refusals} prompts were refused within "
            f"{_duration_words(limits.window)}; you can submit again in {_duration_words(wait)}"
        )
        return LimitStatus(True, recent, wait, message)

    def _latest_with(self, user_id: str, count: int, low: datetime, high: datetime) -> datetime:
        """The latest time t in [low, high] with at least `count` refusals at or after t:
        the time of the count-th most recent refusal (found by bisection)."""
        while high - low > _RESOLUTION:
            middle = low + (high - low) / 2
            if self.log.count_refusals(user_id, middle) >= count:
                low = middle
            else:
                high = middle
        return low


class SafetyGate:
    """The policy and the limiter together: what the service layer calls per prompt."""

    def __init__(self, policy: Policy, limiter: RefusalLimiter | None = None) -> None:
        self.policy = policy
        self.limiter = limiter

    def check(self, prompt_text: str, user_id: str | None = None) -> Decision:
        """Refuse blocked users outright; otherwise check the prompt and log any refusal."""
        if self.limiter is not None and user_id is not None:
            status = self.limiter.status(user_id)
            if status.blocked:
                normalized = normalize(prompt_text).text
                return Decision(False, RATE_LIMITED, status.message, (), normalized)
        decision = self.policy.check(prompt_text)
        if self.limiter is not None and user_id is not None and not decision.allowed:
            self.limiter.record(user_id, decision)
        return decision
