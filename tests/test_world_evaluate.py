"""Tests for the world evaluator: adherence scoring, resizing, save/load, and the shipped judge."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from imagineer.world import held_out_prompts, render, sample_scene
from imagineer.world.evaluate import (
    ACCURACY_BAR,
    ATTRIBUTES,
    INPUT_SIZE,
    AttributePrediction,
    AttributeValidation,
    Evaluator,
    EvaluatorConfig,
    EvaluatorError,
    EvaluatorNet,
    Prediction,
    default_path,
    resize_to_input,
    save_evaluator,
    score_predictions,
    scoreable,
)
from imagineer.world.scene import ATTRIBUTE_NAMES, ObjectGroup, Scene

RED_BIRDS = Scene("dusk", "rainy", "sea", "skyline", ObjectGroup("bird", "red", 2, "left"), "photo")
ALL = frozenset(ATTRIBUTE_NAMES)


def perfect(scene: Scene, **wrong: str | int) -> Prediction:
    """A prediction that matches `scene`, except the attributes given as keywords."""
    values = {a: scene.value(a) for a in ATTRIBUTE_NAMES} | wrong
    return Prediction(
        tuple(
            AttributePrediction(a, "red" if values[a] is None else values[a], 0.9)  # type: ignore[arg-type]
            for a in ATTRIBUTE_NAMES
        )
    )


# --- scoring logic on hand-made predictions -------------------------------------------------


def test_only_mentioned_attributes_count() -> None:
    pred = perfect(RED_BIRDS, time="noon", object_count=3)
    report = score_predictions([pred], [(RED_BIRDS, frozenset({"object_kind", "weather"}))])
    assert report.accuracy("object_kind") == 1.0
    assert report.accuracy("weather") == 1.0
    assert report.accuracy("time") is None  # wrong, but never stated
    assert report.all_right == 1.0
    assert report.mean == 1.0


def test_a_wrong_mentioned_attribute_breaks_all_right() -> None:
    targets = [(RED_BIRDS, ALL), (RED_BIRDS, ALL)]
    preds = [perfect(RED_BIRDS), perfect(RED_BIRDS, object_position="right")]
    report = score_predictions(preds, targets)
    assert report.accuracy("object_position") == 0.5
    assert report.accuracy("time") == 1.0
    assert report.all_right == 0.5
    assert report.mean == pytest.approx((8 + 0.5) / 9)


def test_noir_colour_is_skipped() -> None:
    noir = dataclasses.replace(RED_BIRDS, style="noir")
    assert not scoreable(noir, "object_colour")
    report = score_predictions([perfect(noir, object_colour="blue")], [(noir, ALL)])
    colour = next(a for a in report.attributes if a.attribute == "object_colour")
    assert colour.total == 0 and colour.accuracy is None
    assert report.all_right == 1.0
    assert report.mean == 1.0  # the unscored attribute is left out of the mean


def test_no_objects_skips_colour_count_position_but_not_kind() -> None:
    empty = dataclasses.replace(RED_BIRDS, objects=None)
    assert [a for a in ATTRIBUTE_NAMES if not scoreable(empty, a)] == [
        "object_colour",
        "object_count",
        "object_position",
    ]
    report = score_predictions([perfect(empty, object_kind="bird")], [(empty, ALL)])
    assert report.accuracy("object_kind") == 0.0
    assert report.all_right == 0.0


def test_prompt_with_nothing_scoreable_is_left_out_of_all_right() -> None:
    noir = dataclasses.replace(RED_BIRDS, style="noir")
    targets = [(noir, frozenset({"object_colour"})), (RED_BIRDS, frozenset({"time"}))]
    report = score_predictions([perfect(noir), perfect(RED_BIRDS, time="night")], targets)
    assert report.prompt_results == (None, False)
    assert report.prompts_scored == 1
    assert report.all_right == 0.0


def test_restricting_attributes_drops_the_others() -> None:
    report = score_predictions(
        [perfect(RED_BIRDS, object_count=1)], [(RED_BIRDS, ALL)], ("time", "object_kind")
    )
    assert [a.attribute for a in report.attributes] == ["time", "object_kind"]
    assert report.all_right == 1.0
    with pytest.raises(ValueError, match="not scored"):
        report.accuracy("object_count")


def test_scoring_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="2 targets"):
        score_predictions([perfect(RED_BIRDS)], [(RED_BIRDS, ALL)] * 2)
    with pytest.raises(ValueError, match="'colour'"):
        score_predictions([perfect(RED_BIRDS)], [(RED_BIRDS, frozenset({"colour"}))])
    with pytest.raises(ValueError, match="'size'"):
        score_predictions([perfect(RED_BIRDS)], [(RED_BIRDS, ALL)], ("size",))


def test_report_to_dict_is_json() -> None:
    report = score_predictions([perfect(RED_BIRDS)], [(RED_BIRDS, ALL)])
    data = json.loads(json.dumps(report.to_dict()))
    assert data["all_right"] == 1.0
    assert data["attributes"]["object_kind"]["correct"] == 1


# --- shapes, resizing, save and load ---------------------------------------------------------


def test_resize_to_input() -> None:
    wide = np.zeros((24, 40, 3), np.uint8)
    assert resize_to_input(wide).shape == (INPUT_SIZE, INPUT_SIZE, 3)
    same = np.full((32, 32, 3), 7, np.uint8)
    assert resize_to_input(same) is same
    with pytest.raises(ValueError, match="uint8"):
        resize_to_input(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(32, 32\)"):
        resize_to_input(np.zeros((32, 32), np.uint8))


def test_net_has_one_head_per_attribute() -> None:
    net = EvaluatorNet(EvaluatorConfig(channels=(4, 4, 4), hidden=8)).eval()
    out = net(torch.zeros(2, 3, 32, 32))
    assert [o.shape for o in out] == [(2, len(a.values)) for a in ATTRIBUTES]


def _tiny(tmp_path, scored=("time", "style")):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = EvaluatorNet(EvaluatorConfig(channels=(4, 4, 4), hidden=8))
    valid = [AttributeValidation(a, 0.5, 0.2, 10) for a in ATTRIBUTE_NAMES]
    return net, save_evaluator(net, tmp_path / "e.safetensors", scored=scored, validation=valid)


def test_save_load_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    net, path = _tiny(tmp_path)
    judge = Evaluator.load(path)
    assert judge.scored == ("time", "style")
    assert judge.validation[0] == AttributeValidation("time", 0.5, 0.2, 10)
    images = [
        np.random.default_rng(i).integers(0, 256, (h, w, 3), np.uint8)
        for i, (h, w) in enumerate([(32, 32), (24, 40), (256, 256)])
    ]
    preds = judge.predict(images)
    probs = Evaluator(net).probabilities(images)
    for n, pred in enumerate(preds):
        for a, attr in enumerate(ATTRIBUTES):
            got = pred.get(attr.name)
            assert got.label == attr.values[int(probs[a][n].argmax())]
            assert got.probability == pytest.approx(float(probs[a][n].max()), abs=1e-6)
    report = judge.score(images, [(RED_BIRDS, ALL)] * 3)
    assert [a.attribute for a in report.attributes] == ["time", "style"]


def test_load_refuses_missing_or_foreign_weights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EvaluatorError, match="imagineer train evaluator"):
        Evaluator.load(tmp_path / "absent.safetensors")
    _, path = _tiny(tmp_path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    meta["attributes"] = json.dumps([["time", ["noon"]]])
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(EvaluatorError, match="retrain"):
        Evaluator.load(path)


# --- the shipped weights ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def judge() -> Evaluator:
    if not default_path().exists():
        pytest.fail(f"the evaluator weights are not shipped at {default_path()}")
    return Evaluator.load()


def test_shipped_weights_are_small_and_validated(judge: Evaluator) -> None:
    assert default_path().stat().st_size <= 2_000_000
    assert len(judge.scored) >= 6
    for v in judge.validation:
        if v.attribute in judge.scored:
            assert v.accuracy >= ACCURACY_BAR
            assert v.accuracy > v.chance + 0.3


def test_shipped_judge_reads_fresh_renders(judge: Evaluator) -> None:
    # Seeds far from the training and validation ones, every base size, both splits.
    rng = np.random.default_rng(987_654)
    scenes = [sample_scene(rng, split="test" if i % 2 else "train") for i in range(48)]
    sizes = [(32, 32), (40, 24), (24, 40)]
    images = [render(s, *sizes[i % 3]) for i, s in enumerate(scenes)]
    report = judge.score(images, [(s, ALL) for s in scenes])
    for score in report.attributes:
        assert score.accuracy is not None and score.accuracy >= 0.85, score
    assert report.all_right is not None and report.all_right >= 0.6


def test_shipped_judge_on_held_out_prompts_and_large_renders(judge: Evaluator) -> None:
    pairs = held_out_prompts(12, seed=5)
    images = [render(s, 128, 128) for s, _ in pairs]  # resized to 32x32 inside
    report = judge.score(images, [(s, c.mentioned) for s, c in pairs])
    assert report.mean is not None and report.mean >= 0.85
    # A constant grey image is not a red bird on the left: it must not pass as one.
    grey = [np.full((32, 32, 3), 128, np.uint8)] * len(pairs)
    assert judge.score(grey, [(s, c.mentioned) for s, c in pairs]).all_right == 0.0
