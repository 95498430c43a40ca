"""Normalization of prompt text for the safety gate, one evasion at a time."""

import pytest

from imagineer.safety import Policy
from imagineer.safety.normalize import fold_text, normalize


@pytest.fixture(scope="module")
def nude_policy() -> Policy:
    # A deny list makes the matcher observable without the default lists.
    return Policy.from_toml('[policy]\ndeny = ["nude", "lewd", "teen", "child"]\n')


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("NUDE", "nude"),  # case folding
        ("Straße", "strasse"),  # full case folding, not lower()
        ("ｎｕｄｅ", "nude"),  # fullwidth, through NFKC
        ("𝐧𝐮𝐝𝐞", "nude"),  # mathematical bold, through NFKC
        ("ⓝⓤⓓⓔ", "nude"),  # circled letters, through NFKC
        ("🅝🅤🅓🅔", "nude"),  # negative circled letters, no decomposition
        ("nu\u200bde", "nude"),  # zero-width space
        ("nu\u200c\u200dde", "nude"),  # zero-width non-joiner and joiner
        ("nu\u2060de", "nude"),  # word joiner
        ("nu\ufeffde", "nude"),  # byte order mark
        ("nu\u00adde", "nude"),  # soft hyphen
        ("nu\u3164de", "nude"),  # Hangul filler, an invisible letter
        ("nu\x00de", "nu de"),  # control characters become spaces
        ("n\u0430k\u0435d", "naked"),  # Cyrillic a and e
        ("\u03b7ude", "nude"),  # Greek eta
        ("\u0274\u1d1c\u1d05\u1d07", "nude"),  # small capitals
        ("n\u00fcd\u00e9", "nude"),  # accents
        ("n\u0338u\u0338d\u0338e\u0338", "nude"),  # combining overlays
    ],
)
def test_characters_fold_to_plain_latin(raw: str, expected: str) -> None:
    assert normalize(raw).text == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("n0de", "node"),
        ("k1d", "kid"),
        ("s3x", "sex"),
        ("n4ked", "naked"),
        ("5ex", "sex"),
        ("gho7", "ghot"),
        ("n@ked", "naked"),
        ("$ex", "sex"),
        ("k!d", "kid"),
    ],
)
def test_leetspeak_is_undone(raw: str, expected: str) -> None:
    assert expected in normalize(raw).forms


def test_one_reads_as_l_as_well_as_i(nude_policy: Policy) -> None:
    assert not nude_policy.check("1ewd").allowed
    assert not nude_policy.check("ch11d").allowed  # mixed: one i, one l
    assert not nude_policy.check("a chiId").allowed  # capital I standing for l


def test_numbers_stay_numbers() -> None:
    assert normalize("--ar 16:9 --v 6").text == "ar 16 9 v 6"
    assert normalize("a 13yo, 1920s photo in 4k").text == "a 13yo 1920s photo in 4k"
    assert normalize("wow!").text == "wow"  # a trailing ! is punctuation, not an i


@pytest.mark.parametrize(
    "raw", ["n.u.d.e", "n-u-d-e", "n_u_d_e", "n*u*d*e", "n u d e", "n/u/d/e", "n . u . d . e"]
)
def test_spelled_out_letters_join(raw: str) -> None:
    assert normalize(raw).text == "nude"


def test_hyphenated_words_stay_words() -> None:
    assert normalize("half-naked").text == "half naked"
    assert normalize("a well-known painter").text == "a well known painter"


def test_repeated_letters_collapse_in_text_and_match(nude_policy: Policy) -> None:
    assert normalize("nuuuuude").text == "nude"
    assert not nude_policy.check("nuuuuude").allowed
    assert not nude_policy.check("nuude").allowed
    assert not nude_policy.check("teeeeen").allowed
    # Fewer letters than the term is another word: "ten" is not "teen".
    assert nude_policy.check("ten cats").allowed


def test_words_split_across_whitespace_join_but_common_words_do_not(nude_policy: Policy) -> None:
    assert not nude_policy.check("a chi ld").allowed
    assert not nude_policy.check("nu de").allowed
    deny_penis = Policy.from_toml('[policy]\ndeny = ["penis"]\n')
    assert deny_penis.check("a pen is on the desk").allowed
    assert not deny_penis.check("p e n i s").allowed


def test_forms_include_plain_and_leet_spellings() -> None:
    forms = normalize("s3x k1d").forms
    assert forms[0] == "s3x k1d"
    assert "sex kid" in forms
    assert len(forms) == len(set(forms))


def test_capital_i_is_marked_only_until_tokenizing() -> None:
    assert normalize("CHILD").text == "child"
    assert "\ue000" not in normalize("INDIGO").text
    assert "\ue000" in fold_text("I")  # kept apart from l/i inside the folded text


def test_rejects_non_text() -> None:
    with pytest.raises(ValueError, match="must be a str"):
        normalize(b"bytes")  # type: ignore[arg-type]
