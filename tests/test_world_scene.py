"""Tests for the world's scene attributes, sampling and held-out split."""

from collections import Counter

import numpy as np
import pytest

from imagineer.world.scene import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    KINDS,
    ObjectGroup,
    Scene,
    all_combinations,
    held_out_combinations,
    is_held_out,
    sample_scene,
)


def test_attributes_list_every_value() -> None:
    names = [a.name for a in ATTRIBUTES]
    assert names == [
        "time", "weather", "landscape", "city", "object_kind",
        "object_colour", "object_count", "object_position", "style",
    ]  # fmt: skip
    values = dict(ATTRIBUTES)
    assert values["time"] == ("dawn", "noon", "sunset", "dusk", "night")
    assert values["object_kind"] == ("none", *KINDS)
    assert values["object_count"] == (1, 2, 3)
    assert values["style"] == ("photo", "neon", "pastel", "noir", "watercolor", "pixel_art")


def test_invalid_values_are_rejected_with_the_name() -> None:
    with pytest.raises(ValueError, match="weather='sunny'"):
        Scene(weather="sunny")
    with pytest.raises(ValueError, match="count=4"):
        ObjectGroup("bird", "red", 4, "left")
    with pytest.raises(ValueError, match="seed"):
        Scene(seed=-1)


def test_dict_round_trip() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        scene = sample_scene(rng)
        assert Scene.from_dict(scene.to_dict()) == scene
    with pytest.raises(ValueError, match="unknown scene keys"):
        Scene.from_dict({**Scene().to_dict(), "colour": "red"})


def test_labels_follow_attribute_order() -> None:
    scene = Scene(
        "night", "rainy", "sea", "futuristic", ObjectGroup("boat", "blue", 2, "right"), "neon"
    )
    assert scene.labels() == (4, 3, 2, 2, 4, 3, 1, 2, 1)
    assert Scene().labels()[4:8] == (0, None, None, None)
    assert scene.value("object_colour") == "blue"
    with pytest.raises(ValueError, match="unknown attribute"):
        scene.value("colour")


def test_held_out_is_ten_percent_and_covers_every_value() -> None:
    held = held_out_combinations()
    assert len(held) == round(0.1 * len(all_combinations()))
    assert held == held_out_combinations()  # deterministic
    for i in range(4):
        assert {c[i] for c in held} == {c[i] for c in all_combinations()}
    assert sum(is_held_out(*c) for c in all_combinations()) == len(held)


def test_train_split_never_yields_held_out_and_test_only_does() -> None:
    rng = np.random.default_rng(0)
    train = [sample_scene(rng) for _ in range(3000)]
    with_objects = [s.objects for s in train if s.objects is not None]
    assert not any(is_held_out(o.kind, o.colour, o.count, o.position) for o in with_objects)
    assert 0.82 < len(with_objects) / len(train) < 0.88
    assert 0.46 < sum(s.style == "photo" for s in train) / len(train) < 0.54
    test = [sample_scene(rng, split="test") for _ in range(500)]
    assert all(s.objects is not None for s in test)
    assert all(
        is_held_out(s.objects.kind, s.objects.colour, s.objects.count, s.objects.position)
        for s in test
        if s.objects
    )
    assert len(Counter(s.objects for s in test)) == len(held_out_combinations())


def test_sampling_is_deterministic_and_rejects_unknown_split() -> None:
    a = [sample_scene(np.random.default_rng(5)) for _ in range(3)]
    b = [sample_scene(np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    with pytest.raises(ValueError, match="split='val'"):
        sample_scene(np.random.default_rng(0), split="val")
    assert len(ATTRIBUTE_NAMES) == 9
