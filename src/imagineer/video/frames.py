"""How many frames to ask a video engine for, given the clip lengths it advertises.

A clip asks for seconds * fps frames; an engine renders only the counts in its
`EngineInfo.frame_counts` (AnimateDiff at most 32 a call, LTX-Video 8k+1). The plan asks for
counts the engine renders and says why when it differs from the clip's: a count off the
engine's rule is rounded up and retimed; a clip longer than one call is made as several
clips, each continuing from the last frame of the one before, when the engine can start
from an image, or else rendered at the engine's longest and interpolated to the length
asked for (the motion then runs slower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from imagineer.engines.base import FrameCounts


@dataclass(frozen=True)
class FramePlan:
    """The engine calls that make one clip of `wanted` frames."""

    wanted: int  # frames the clip has in the end (after retiming)
    segments: tuple[int, ...]  # frames asked of each engine call, in order
    reason: str = ""  # why the calls differ from one call of `wanted` frames; "" when not

    @property
    def rendered(self) -> int:
        """Distinct frames the calls make: each segment after the first repeats the last
        frame of the one before as its first."""
        return self.segments[0] + sum(n - 1 for n in self.segments[1:])


def plan_frames(
    wanted: int, counts: FrameCounts | None, *, engine: str, can_continue: bool
) -> FramePlan:
    """The engine calls for a clip of `wanted` frames on an engine that renders `counts`
    (None: any count). `can_continue`: the engine can start a clip from an image."""
    if wanted < 2:
        raise ValueError(f"wanted={wanted}: a clip needs at least 2 frames")
    if counts is None or counts.allows(wanted):
        return FramePlan(wanted, (wanted,))
    rule = counts.describe()
    up = counts.at_least(wanted)
    if up is not None:
        why = f"{engine} renders {rule}: rendered {up} and retimed to {wanted}"
        return FramePlan(wanted, (up,), why)
    longest = counts.at_most(wanted)
    if longest is None:
        raise ValueError(f"{engine} renders {rule}: it cannot make a clip of {wanted} frames")
    if can_continue and longest > 2:
        # each later clip starts on the frame the one before ended on
        calls = math.ceil((wanted - 1) / (longest - 1))
        why = (
            f"{engine} renders {rule} a call: made as {calls} clips of {longest} frames, each "
            f"continuing from the last frame of the one before, retimed to {wanted}"
        )
        return FramePlan(wanted, (longest,) * calls, why)
    why = (
        f"{engine} renders {rule} a call and cannot continue a clip from an image: rendered "
        f"{longest} and interpolated to {wanted} (motion {wanted / longest:.1f}x slower)"
    )
    return FramePlan(wanted, (longest,), why)
