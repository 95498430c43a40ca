"""Loading and validating operator policy files: errors name the file, key and line."""

from pathlib import Path

import pytest

from imagineer.safety import Policy, PolicyError
from imagineer.safety.policy_file import default_policy_text, read_policy_spec


def _error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        Policy.from_toml(text)
    return caught.value


def test_default_policy_loads_with_every_category() -> None:
    spec = read_policy_spec()
    names = [c.name for c in spec.categories]
    assert names[0] == "minors_sexual"  # always checked first
    assert set(names) == {
        "minors_sexual",
        "nonconsensual_sexual",
        "graphic_violence",
        "hate_extremism",
        "public_figure_deception",
        "explicit_sexual",
    }
    assert spec.sources == ("default policy",)
    assert "[categories.minors_sexual]" in default_policy_text()


def test_load_reads_an_operator_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[policy]\ndeny = ["clown"]\n', encoding="utf-8")
    policy = Policy.load(path)
    assert policy.spec.sources == ("default policy", str(path))
    assert not policy.check("a clown").allowed
    assert Policy.load().check("a clown").allowed


def test_a_copy_of_the_default_loads_as_the_default(tmp_path: Path) -> None:
    path = tmp_path / "copy.toml"
    path.write_text(default_policy_text(), encoding="utf-8")
    assert Policy.load(path).spec.categories == Policy.load().spec.categories


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        Policy.load(tmp_path / "absent.toml")


def test_minors_category_cannot_be_disabled() -> None:
    error = _error("# deployment policy\n\n[categories.minors_sexual]\nenabled = false\n")
    assert (error.key, error.line) == ("categories.minors_sexual.enabled", 4)
    assert "cannot be disabled" in str(error)
    assert isinstance(error, ValueError)


def test_minors_groups_cannot_be_given_exceptions() -> None:
    error = _error('[groups.sexual]\nexcept = ["nude"]\n')
    assert (error.key, error.line) == ("groups.sexual.except", 2)


def test_syntax_errors_point_at_the_line() -> None:
    error = _error('[policy]\ndeny = ["a",\nallow = 3\n')
    assert error.key == "(syntax)"
    assert error.line is not None and error.line >= 3


def test_unknown_keys_point_at_the_line() -> None:
    error = _error("[categories.graphic_violence]\nenabled = false\ncolour = 'red'\n")
    assert (error.key, error.line) == ("categories.graphic_violence.colour", 3)
    assert "expected one of: enabled, label, rules, terms" in str(error)


def test_wrong_types_point_at_the_line() -> None:
    error = _error('[policy]\nallow = [\n  "fine",\n  3,\n]\n')
    assert (error.key, error.line) == ("policy.allow", 2)
    error = _error('[categories.graphic_violence]\nenabled = "no"\n')
    assert (error.key, error.line) == ("categories.graphic_violence.enabled", 2)


def test_empty_terms_are_refused() -> None:
    error = _error('[policy]\ndeny = [\n  "ok",\n  "!!!",\n]\n')
    assert (error.key, error.line) == ("policy.deny", 4)


def test_rules_must_name_existing_groups() -> None:
    text = (
        "[categories.weapons]\n"
        'label = "weapons"\n'
        "rules = [\n"
        '  { all_of = ["weapon"] },\n'
        '  { all_of = ["wepaon", "howto"] },\n'
        "]\n"
        "[groups.weapon]\n"
        'terms = ["pipe bomb"]\n'
    )
    error = _error(text)
    assert (error.key, error.line) == ("categories.weapons.rules", 5)
    assert "unknown group 'wepaon'" in str(error)


def test_new_categories_need_a_label() -> None:
    error = _error('[categories.weapons]\nterms = ["pipe bomb"]\n')
    assert (error.key, error.line) == ("categories.weapons.label", 1)


def test_detectors_can_only_be_made_stricter() -> None:
    error = _error("[detectors]\nadult_age = 16\n")
    assert (error.key, error.line) == ("detectors.adult_age", 2)
    policy = Policy.from_toml("[detectors]\nadult_age = 21\n")
    assert not policy.check("a 19 year old, nude").allowed


def test_negations_must_name_existing_groups() -> None:
    error = _error('[[negations]]\nnegated = "hats"\nimplies = "sexual"\n')
    assert (error.key, error.line) == ("negations.0", 2)  # the line naming the bad group


def test_unsupported_version() -> None:
    error = _error("[policy]\nversion = 2\n")
    assert (error.key, error.line) == ("policy.version", 2)
