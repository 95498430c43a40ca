"""The safety gate: a policy checked on the normalized prompt before any compute."""

from imagineer.safety.limiter import (
    RATE_LIMITED,
    InMemoryRefusalLog,
    LimitStatus,
    RefusalLimiter,
    RefusalLimits,
    RefusalLog,
    SafetyGate,
)
from imagineer.safety.normalize import NormalizedText, normalize
from imagineer.safety.output import NudeNetChecker, OutputChecker
from imagineer.safety.policy import DENY_CATEGORY, Decision, Policy
from imagineer.safety.policy_file import ALWAYS_ON, PolicyError

__all__ = [
    "ALWAYS_ON",
    "DENY_CATEGORY",
    "RATE_LIMITED",
    "Decision",
    "InMemoryRefusalLog",
    "LimitStatus",
    "NormalizedText",
    "NudeNetChecker",
    "OutputChecker",
    "Policy",
    "PolicyError",
    "RefusalLimiter",
    "RefusalLimits",
    "RefusalLog",
    "SafetyGate",
    "normalize",
]
