"""Natural-language captions for world scenes, with a record of which attributes each states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TypeVar

import numpy as np

from imagineer.world.scene import (
    CITIES,
    COLOURS,
    COUNTS,
    KINDS,
    LANDSCAPES,
    POSITIONS,
    SKY_KINDS,
    STYLES,
    TIMES,
    WEATHERS,
    Scene,
    sample_scene,
)

T = TypeVar("T")

# Probability that a caption states each attribute (objects' kind is always stated).
MENTION_P = {
    "time": 0.75,
    "weather": 0.55,
    "landscape": 0.65,
    "city": 0.7,
    "city_none": 0.25,
    "style": 0.75,
    "style_photo": 0.35,
    "object_colour": 0.85,
    "object_count": 0.75,
    "object_position": 0.7,
}


@dataclass(frozen=True)
class Caption:
    """A prompt and the names (from ATTRIBUTE_NAMES) of the attributes it states."""

    text: str
    mentioned: frozenset[str]


@dataclass(frozen=True)
class PromptSpec:
    """A partial scene description: None means 'not mentioned'."""

    time: str | None = None
    weather: str | None = None
    landscape: str | None = None
    city: str | None = None
    kind: str | None = None
    colour: str | None = None
    count: int | None = None
    position: str | None = None
    style: str | None = None

    def __post_init__(self) -> None:
        allowed = {
            "time": TIMES,
            "weather": WEATHERS,
            "landscape": LANDSCAPES,
            "city": CITIES,
            "kind": KINDS,
            "colour": COLOURS,
            "count": COUNTS,
            "position": POSITIONS,
            "style": STYLES,
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (isinstance(value, bool) or value not in allowed[f.name]):
                raise ValueError(
                    f"{f.name}={value!r} is not valid; use None or one of {allowed[f.name]}"
                )
        if self.kind is None and (self.colour, self.count, self.position) != (None, None, None):
            raise ValueError("colour, count and position describe objects: give kind as well")

    @property
    def mentioned(self) -> frozenset[str]:
        names = {
            "kind": "object_kind",
            "colour": "object_colour",
            "count": "object_count",
            "position": "object_position",
        }
        return frozenset(
            names.get(f.name, f.name) for f in fields(self) if getattr(self, f.name) is not None
        )


# ---- vocabulary --------------------------------------------------------------------------------
_TIME = {
    "dawn": ("at dawn", "at sunrise", "at daybreak", "at first light", "in the early morning"),
    "noon": ("at noon", "at midday", "in the midday sun", "under the noon sun", "at high noon"),
    "sunset": ("at sunset", "at sundown", "during sunset", "as the sun sets"),
    "dusk": ("at dusk", "at twilight", "in the twilight", "in the blue dusk light"),
    "night": ("at night", "at nighttime", "under the stars", "by night", "in the night"),
}
_WEATHER = {
    "clear": ("under a clear sky", "under clear skies", "with a clear sky", "in clear weather"),
    "cloudy": (
        "under a cloudy sky",
        "under heavy clouds",
        "with clouds overhead",
        "under overcast skies",
    ),
    "foggy": ("in the fog", "in thick fog", "shrouded in fog", "in the mist"),
    "rainy": ("in the rain", "in heavy rain", "during a rainstorm", "in pouring rain"),
    "snowy": ("in the snow", "during a snowfall", "with falling snow", "in a snowstorm"),
}
_WEATHER_ADJ = {
    "cloudy": ("cloudy",),
    "foggy": ("foggy", "misty"),
    "rainy": ("rainy",),
    "snowy": ("snowy",),
}
_LANDSCAPE_NP = {
    "mountains": ("mountains", "a mountain range", "mountain peaks", "the mountains"),
    "hills": ("rolling hills", "hills", "the hills", "a hilly countryside"),
    "sea": ("the sea", "the ocean", "the water", "the open sea"),
    "desert": ("the desert", "a desert", "sand dunes", "desert dunes"),
    "forest": ("a forest", "the woods", "a pine forest", "a woodland"),
}
_LANDSCAPE_PP = {
    "mountains": (
        "in the mountains",
        "among the mountains",
        "in front of mountains",
        "below mountain peaks",
    ),
    "hills": (
        "in the hills",
        "among rolling hills",
        "on the rolling hills",
        "in the hilly countryside",
    ),
    "sea": ("by the sea", "on the ocean", "by the ocean", "on the water", "at sea"),
    "desert": ("in the desert", "among sand dunes", "in the dunes", "on the desert sand"),
    "forest": ("in a forest", "by the woods", "in the forest", "near a pine forest"),
}
_LANDSCAPE_SKY_PP = {
    "mountains": ("over the mountains", "above the mountains", "over mountain peaks"),
    "hills": ("over the hills", "above rolling hills", "over the hills"),
    "sea": ("over the sea", "above the ocean", "over the water"),
    "desert": ("over the desert", "above the dunes", "over the desert"),
    "forest": ("over a forest", "above the woods", "over the forest"),
}
_CITY_NP = {
    "skyline": ("a city skyline", "a city", "a skyline", "a downtown skyline", "an old city"),
    "futuristic": (
        "a futuristic city",
        "a sci-fi city",
        "a city of the future",
        "a futuristic metropolis",
    ),
}
_CITY_NONE = ("with no city in sight", "with no buildings", "far from any city", "with no city")
_CITY_LINK = ("with", "beside", "near")
_COUNT = {
    1: ("a", "one", "a single", "1"),
    2: ("two", "2", "a pair of"),
    3: ("three", "3", "a trio of"),
}
_NOUN = {
    "flying_car": (
        ("flying car", "flying cars"),
        ("hover car", "hover cars"),
        ("hovercar", "hovercars"),
    ),
    "bird": (("bird", "birds"),),
    "balloon": (
        ("hot air balloon", "hot air balloons"),
        ("balloon", "balloons"),
        ("hot-air balloon", "hot-air balloons"),
    ),
    "boat": (("boat", "boats"), ("sailboat", "sailboats"), ("sailing boat", "sailing boats")),
    "tree": (("tree", "trees"),),
    "house": (("house", "houses"), ("cottage", "cottages"), ("cabin", "cabins")),
}
_VERB = {
    "flying_car": ("flying", "hovering", "zooming"),
    "bird": ("flying", "soaring", "gliding"),
    "balloon": ("floating", "drifting", "rising"),
    "boat": ("sailing", "floating"),
    "tree": ("standing", "growing"),
    "house": ("standing",),
}
_POSITION = {
    "left": ("on the left", "to the left", "on the left side", "at the left"),
    "center": ("in the middle", "in the center", "in the centre", "at the center"),
    "right": ("on the right", "to the right", "on the right side", "at the right"),
}
_STYLE_PREFIX = {
    "photo": ("a photo of", "a photograph of", "a photorealistic image of"),
    "neon": ("neon art of", "a neon-lit picture of", "a glowing neon image of"),
    "pastel": ("a pastel drawing of", "a pastel illustration of"),
    "noir": ("a film noir shot of", "a black and white noir photo of"),
    "watercolor": ("a watercolor painting of", "a watercolor of"),
    "pixel_art": ("pixel art of", "a pixel art image of"),
}
_STYLE_SUFFIX = {
    "photo": ("photo", "photograph", "photorealistic"),
    "neon": ("neon style", "in neon colors", "neon-lit"),
    "pastel": ("in pastel colors", "pastel", "soft pastel tones"),
    "noir": ("film noir", "in film noir style", "black and white noir"),
    "watercolor": ("as a watercolor painting", "watercolor", "in watercolor"),
    "pixel_art": ("in pixel art style", "pixel art", "8-bit pixel art"),
}
_STYLE_ADJ = {
    "neon": "neon-lit",
    "pastel": "pastel",
    "noir": "noir",
    "watercolor": "watercolor",
    "pixel_art": "pixel art",
}
_FALLBACK_SUBJECT = ("a scene", "a view", "a picture")
_ARTICLES = ("a ", "an ", "the ")


class _Choices:
    """Random choices from an rng, or the first option every time (canonical wording)."""

    def __init__(self, rng: np.random.Generator | None) -> None:
        self.rng = rng

    def pick(self, options: Sequence[T]) -> T:
        return options[0] if self.rng is None else options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return False if self.rng is None else bool(self.rng.random() < p)

    def shuffle(self, items: list[T]) -> list[T]:
        if self.rng is None:
            return items
        return [items[i] for i in self.rng.permutation(len(items))]


def _with_article(words: str) -> str:
    """Fix 'a' before a vowel ('a old city' → 'an old city')."""
    if words.startswith(("a ", "an ")):
        rest = words.split(" ", 1)[1]
        return ("an " if rest[:1] in "aeiou" and rest[:1] else "a ") + rest
    return words


def _add_adjective(np_: str, adjective: str) -> str:
    for article in _ARTICLES:
        if np_.startswith(article):
            return _with_article(article + adjective + " " + np_[len(article) :])
    return adjective + " " + np_


def _objects_np(kind: str, spec: PromptSpec, ch: _Choices) -> str:
    singular, plural = ch.pick(_NOUN[kind])
    noun = singular if spec.count == 1 else plural
    words = [noun] if spec.colour is None else [spec.colour, noun]
    if spec.count is not None:
        words.insert(0, ch.pick(_COUNT[spec.count]))
    text = _with_article(" ".join(words))
    if ch.chance(0.25):
        text += " " + ch.pick(_VERB[kind])
    if spec.position is not None:
        text += " " + ch.pick(_POSITION[spec.position])
    return text


def _subject(spec: PromptSpec, ch: _Choices) -> str:
    """Which mentioned thing heads the caption: the city, the landscape or the objects."""
    options = []
    if spec.city not in (None, "none"):
        options.append("city")
    if spec.landscape is not None:
        options.append("landscape")
    if spec.kind is not None:
        options.append("objects")
    return ch.pick(options) if options else "fallback"


def _modifiers(spec: PromptSpec, subject: str, weather_adj: bool, ch: _Choices) -> list[str]:
    """Phrases for every mentioned attribute that the head noun phrase does not carry."""
    over_sky = subject == "objects" and spec.kind in SKY_KINDS
    mods = []
    if spec.time is not None:
        mods.append(ch.pick(_TIME[spec.time]))
    if spec.weather is not None and not weather_adj:
        mods.append(ch.pick(_WEATHER[spec.weather]))
    if spec.landscape is not None and subject != "landscape":
        table = _LANDSCAPE_SKY_PP if over_sky else _LANDSCAPE_PP
        mods.append(ch.pick(table[spec.landscape]))
    if spec.city == "none":
        mods.append(ch.pick(_CITY_NONE))
    elif spec.city is not None and subject != "city":
        link = ch.pick(("over", "above")) if over_sky else ch.pick(_CITY_LINK)
        mods.append(f"{link} {ch.pick(_CITY_NP[spec.city])}")
    if spec.kind is not None and subject != "objects":
        mods.append("with " + _objects_np(spec.kind, spec, ch))
    return mods


def _compose(spec: PromptSpec, ch: _Choices) -> Caption:
    # 1. the head noun phrase
    subject = _subject(spec, ch)
    if subject == "city" and spec.city is not None:
        head = ch.pick(_CITY_NP[spec.city])
    elif subject == "landscape" and spec.landscape is not None:
        head = ch.pick(_LANDSCAPE_NP[spec.landscape])
    elif subject == "objects" and spec.kind is not None:
        head = _objects_np(spec.kind, spec, ch)
    else:
        head = ch.pick(_FALLBACK_SUBJECT)
    # 2. how style and weather are said: adjectives only fit a city, landscape or fallback head
    style_mode = ch.pick(("prefix", "suffix", "suffix", "adjective"))
    if subject == "objects" or spec.style not in _STYLE_ADJ:
        style_mode = "suffix" if style_mode == "adjective" else style_mode
    weather_adj = spec.weather in _WEATHER_ADJ and subject != "objects" and ch.chance(0.3)
    if spec.style is not None and style_mode == "adjective":
        head = _add_adjective(head, _STYLE_ADJ[spec.style])
    if spec.weather is not None and weather_adj:
        head = _add_adjective(head, ch.pick(_WEATHER_ADJ[spec.weather]))
    # 3. word order: modifiers shuffled, sometimes the time of day fronted
    mods = ch.shuffle(_modifiers(spec, subject, weather_adj, ch))
    front = ""
    if spec.time is not None and style_mode != "prefix" and ch.chance(0.2):
        front = next(m for m in mods if m in _TIME[spec.time]) + ", "
        mods.remove(front[:-2])
    sep = ", " if ch.chance(0.25) else " "
    text = front + sep.join([head, *mods])
    # 4. the style phrase
    if spec.style is not None and style_mode == "prefix":
        text = ch.pick(_STYLE_PREFIX[spec.style]) + " " + text
    elif spec.style is not None and style_mode == "suffix":
        text += ", " + ch.pick(_STYLE_SUFFIX[spec.style])
    return Caption(text, spec.mentioned)


def _pick_mentions(scene: Scene, rng: np.random.Generator) -> PromptSpec:
    def keep(value: T, p: float) -> T | None:
        return value if rng.random() < p else None

    city_p = MENTION_P["city_none"] if scene.city == "none" else MENTION_P["city"]
    style_p = MENTION_P["style_photo"] if scene.style == "photo" else MENTION_P["style"]
    o = scene.objects
    return PromptSpec(
        time=keep(scene.time, MENTION_P["time"]),
        weather=keep(scene.weather, MENTION_P["weather"]),
        landscape=keep(scene.landscape, MENTION_P["landscape"]),
        city=keep(scene.city, city_p),
        kind=None if o is None else o.kind,
        colour=None if o is None else keep(o.colour, MENTION_P["object_colour"]),
        # a single object is always stated: "a bird" already says how many
        count=None
        if o is None
        else (1 if o.count == 1 else keep(o.count, MENTION_P["object_count"])),
        position=None if o is None else keep(o.position, MENTION_P["object_position"]),
        style=keep(scene.style, style_p),
    )


def caption(scene: Scene, rng: np.random.Generator) -> Caption:
    """A varied caption of `scene`; objects are always named, other attributes sometimes."""
    if not isinstance(scene, Scene):
        raise ValueError(f"scene must be a Scene, got {type(scene).__name__}")
    return _compose(_pick_mentions(scene, rng), _Choices(rng))


def describe(
    spec: PromptSpec | None = None, *, rng: np.random.Generator | None = None, **values: object
) -> str:
    """A caption stating exactly the attributes given (a PromptSpec or keyword values).

    Without `rng` the wording is canonical: describe(city="futuristic", time="sunset",
    kind="flying_car") == "a futuristic city at sunset with flying cars".
    """
    if spec is not None and values:
        raise ValueError("give either a PromptSpec or keyword values, not both")
    if spec is None:
        spec = PromptSpec(**values)  # type: ignore[arg-type]
    return _compose(spec, _Choices(rng)).text


def with_look(
    text: str, *, style: str | None = None, time: str | None = None, weather: str | None = None
) -> str:
    """`text` with a look added in the captions' canonical words: time and weather phrases,
    then the style suffix. with_look("a red bird", style="noir", time="dusk") ==
    "a red bird at dusk, film noir"."""
    PromptSpec(style=style, time=time, weather=weather)  # checks the values
    words = [text.rstrip(" ,.")]
    if time is not None:
        words.append(_TIME[time][0])
    if weather is not None:
        words.append(_WEATHER[weather][0])
    phrase = " ".join(words)
    return phrase if style is None else f"{phrase}, {_STYLE_SUFFIX[style][0]}"


def held_out_prompts(n: int = 200, seed: int = 0) -> list[tuple[Scene, Caption]]:
    """n test prompts, only from held-out object combinations, each naming all four object
    attributes plus a random subset of the others."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n={n!r} must be a non-negative int")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        scene = sample_scene(rng, split="test")
        o = scene.objects
        if o is None:
            raise RuntimeError("test scenes always hold objects")
        half = 0.5
        spec = PromptSpec(
            time=scene.time if rng.random() < half else None,
            weather=scene.weather if rng.random() < half else None,
            landscape=scene.landscape if rng.random() < half else None,
            city=scene.city if rng.random() < half else None,
            kind=o.kind,
            colour=o.colour,
            count=o.count,
            position=o.position,
            style=scene.style if rng.random() < half else None,
        )
        out.append((scene, _compose(spec, _Choices(rng))))
    return out
