"""Refusal counting per user: blocking after repeated refusals, and the gate that uses it."""

from datetime import UTC, datetime, timedelta

import pytest

from imagineer.safety import (
    RATE_LIMITED,
    Decision,
    InMemoryRefusalLog,
    Policy,
    RefusalLimiter,
    RefusalLimits,
    SafetyGate,
)

REFUSED = Decision(False, "graphic_violence", "refused: graphic gore", ("gore",), "gore")
ALLOWED = Decision(True, None, "allowed", (), "a cat")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class CountOnlyLog:
    """A RefusalLog with nothing but the protocol's two methods, as a store would offer."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.stamps: list[tuple[str, datetime]] = []

    def record_refusal(
        self, user_id: str, category: str, normalized_prompt: str, message: str
    ) -> None:
        self.stamps.append((user_id, self.clock()))

    def count_refusals(self, user_id: str, since: datetime) -> int:
        return sum(1 for user, at in self.stamps if user == user_id and at >= since)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.mark.parametrize("log_kind", ["memory", "count_only"])
def test_five_refusals_in_ten_minutes_block_for_ten_minutes(clock: Clock, log_kind: str) -> None:
    log = InMemoryRefusalLog(clock) if log_kind == "memory" else CountOnlyLog(clock)
    limiter = RefusalLimiter(log, clock=clock)
    for _ in range(4):
        assert not limiter.record("ann", REFUSED).blocked
        clock.advance(minutes=1)
    status = limiter.record("ann", REFUSED)
    assert status.blocked
    assert status.refusals == 5
    assert abs(status.retry_after - timedelta(minutes=10)) < timedelta(seconds=1)
    assert status.message.startswith("rate limited: 5 prompts were refused within 10 min")
    assert "you can submit again in 10 min" in status.message
    assert not limiter.status("bob").blocked  # other users are not affected
    clock.advance(minutes=9, seconds=59)
    assert limiter.status("ann").blocked
    clock.advance(seconds=2)
    assert not limiter.status("ann").blocked


def test_refusals_spread_out_do_not_block(clock: Clock) -> None:
    limiter = RefusalLimiter(InMemoryRefusalLog(clock), clock=clock)
    for _ in range(10):
        assert not limiter.record("ann", REFUSED).blocked
        clock.advance(minutes=3)


def test_allowed_decisions_are_not_counted(clock: Clock) -> None:
    limiter = RefusalLimiter(InMemoryRefusalLog(clock), RefusalLimits(max_refusals=1), clock)
    assert not limiter.record("ann", ALLOWED).blocked
    assert limiter.record("ann", REFUSED).blocked


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_refusals"):
        RefusalLimits(max_refusals=0)
    with pytest.raises(ValueError, match="window"):
        RefusalLimits(window=timedelta(0))


def test_gate_logs_refusals_and_then_blocks(clock: Clock) -> None:
    log = InMemoryRefusalLog(clock)
    limits = RefusalLimits(max_refusals=2)
    gate = SafetyGate(Policy.load(), RefusalLimiter(log, limits, clock))
    assert gate.check("a cat on a sofa", user_id="ann").allowed
    assert gate.check("a g0re scene", user_id="ann").category == "graphic_violence"
    assert log.count_refusals("ann", clock.now - timedelta(seconds=1)) == 1
    assert gate.check("entrails everywhere", user_id="ann").category == "graphic_violence"
    blocked = gate.check("a cat on a sofa", user_id="ann")
    assert (blocked.allowed, blocked.category) == (False, RATE_LIMITED)
    assert blocked.reason.startswith("rate limited")
    assert gate.check("a cat on a sofa").allowed  # no user, no limit
