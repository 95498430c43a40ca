"""The safety gate's policy: checks a prompt against the refusal categories before any compute."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagineer.safety.matcher import Hit, Term, TermIndex, term_words
from imagineer.safety.normalize import Token, fold_text, readable, tokenize
from imagineer.safety.policy_file import (
    AGE_GROUP,
    FILLER_GROUP,
    NEGATOR_GROUP,
    PAIR_GROUP,
    PUBLIC_FIGURE_GROUP,
    CategorySpec,
    PolicySpec,
    read_policy_spec,
)
from imagineer.safety.prompt_parts import expand_permutations, negated_spans

MAX_PROMPT_CHARS = 10_000
MAX_PERMUTATIONS = 64  # beyond this the whole text is checked with no exemptions
DENY_CATEGORY = "deployment_deny"
_DENY_LABEL = "a term this deployment does not allow"
# Internal group names for policy-wide phrase lists; "@" keeps them apart from file names.
_ALLOW = "@allow"
_DENY = "@deny"
_CATEGORY_PREFIX = "@category:"
_EXCEPT_PREFIX = "@except:"

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_AGE_SUFFIX_RE = re.compile(r"(\d{1,3})(?:yo|yr|yrs|y|yearold|yearsold|years?)")
_AGE_AFTER = (("year", "old"), ("years", "old"), ("yr", "old"), ("yrs", "old"), ("yo",),
              ("y", "o"), ("month", "old"), ("months", "old"), ("week", "old"),
              ("weeks", "old"))  # fmt: skip
_AGE_BEFORE = ("age", "aged", "ages", "under")


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one prompt (or image): allowed or not, and why."""

    allowed: bool
    category: str | None  # the refusal category, None when allowed
    reason: str  # one line for the user: the category and what to change
    matched: tuple[str, ...]  # the policy terms that matched
    normalized: str  # the prompt as the gate read it


@dataclass(frozen=True)
class _Finding:
    """A matched term with what the gate knows about where it stood."""

    hit: Hit
    negated: bool  # inside --no, a negative ::weight, or after "no"/"without"
    allowed: bool  # inside a phrase from [policy] allow


class _Found:
    """All findings of one text, by group, for evaluating rules."""

    def __init__(self, findings: Iterable[_Finding]) -> None:
        self.by_group: dict[str, list[_Finding]] = {}
        for finding in sorted(findings, key=lambda f: (f.hit.start, -f.hit.end)):
            self.by_group.setdefault(finding.hit.group, []).append(finding)

    def present(self, group: str, use_allowed: bool) -> list[_Finding]:
        return [f for f in self.by_group.get(group, []) if use_allowed or not f.allowed]

    def affirmed(self, group: str) -> bool:
        return any(not f.negated and not f.allowed for f in self.by_group.get(group, []))


class Policy:
    """A loaded safety policy. Build it with Policy.load(); check prompts with check()."""

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec
        self._categories = [c for c in spec.categories if c.enabled]
        self._negations = {n.negated: n.implies for n in spec.negations}
        self._index = TermIndex(self._terms(spec))

    @classmethod
    def load(cls, path: Path | None = None) -> Policy:
        """The shipped default policy, with the operator's TOML file at `path` applied on top."""
        return cls(read_policy_spec(path))

    @classmethod
    def from_toml(cls, text: str) -> Policy:
        """Like load(), with the operator's policy given as TOML text."""
        return cls(read_policy_spec(None, text))

    @staticmethod
    def _terms(spec: PolicySpec) -> list[Term]:
        lists: list[tuple[str, Sequence[str]]] = [(_ALLOW, spec.allow), (_DENY, spec.deny)]
        for group in spec.groups:
            lists += [(group.name, group.terms), (_EXCEPT_PREFIX + group.name, group.exceptions)]
        lists += [(_CATEGORY_PREFIX + c.name, c.terms) for c in spec.categories]
        return [
            Term(group, phrase, words)
            for group, phrases in lists
            for phrase in phrases
            if (words := term_words(phrase))
        ]

    def check(self, prompt_text: str) -> Decision:
        """Allow or refuse one prompt. Every {} permutation and the whole text are checked;
        --no parts and negative weights count like any other words."""
        if not isinstance(prompt_text, str):
            raise ValueError(f"prompt_text must be a str, got {type(prompt_text).__name__}")
        if len(prompt_text) > MAX_PROMPT_CHARS:
            raise ValueError(
                f"prompt is {len(prompt_text)} characters; the safety gate reads at most "
                f"{MAX_PROMPT_CHARS}: shorten it"
            )
        folded = fold_text(prompt_text)
        whole_tokens = tokenize(folded)
        normalized = readable(whole_tokens)
        permutations, truncated = expand_permutations(folded, MAX_PERMUTATIONS)
        best: tuple[int, CategorySpec | None, tuple[str, ...]] | None = None
        candidates = [(folded, whole_tokens, truncated)]
        candidates += [(text, tokenize(text), False) for text in permutations if text != folded]
        for text, tokens, strict in candidates:
            refusal = self._refusal(text, tokens, strict)
            if refusal is not None and (best is None or refusal[0] < best[0]):
                best = refusal
            if best is not None and best[0] == 0:
                break
        if best is None:
            return Decision(True, None, "allowed", (), normalized)
        _, category, matched = best
        return self._decision(category, matched, normalized)

    def _decision(
        self, category: CategorySpec | None, matched: tuple[str, ...], normalized: str
    ) -> Decision:
        quoted = " or ".join(f"'{term}'" for term in matched)
        if category is None:
            reason = f"refused: {_DENY_LABEL}; remove {quoted} or ask the operator"
            return Decision(False, DENY_CATEGORY, reason, matched, normalized)
        if category.always_on:
            reason = f"refused: {category.label} is never allowed"
        else:
            reason = (
                f"refused: {category.label}; remove {quoted} "
                "or turn the category off in your policy file"
            )
        return Decision(False, category.name, reason, matched, normalized)

    def _refusal(
        self, text: str, tokens: tuple[Token, ...], strict: bool
    ) -> tuple[int, CategorySpec | None, tuple[str, ...]] | None:
        """(priority, category, matched terms) of the first category this text falls in."""
        found = _Found(self._findings(text, tokens))
        for priority, category in enumerate(self._categories):
            matched = self._category_match(category, found, strict)
            if matched:
                return priority, category, matched
        deny = found.present(_DENY, use_allowed=True)
        if deny:
            return len(self._categories), None, _terms_of(deny)
        return None

    def _category_match(
        self, category: CategorySpec, found: _Found, strict: bool
    ) -> tuple[str, ...]:
        # The always-on category ignores [policy] allow and counts negated words too: an
        # operator cannot excuse it and "--no" cannot hide it. Elsewhere a term that is only
        # ever negated ("--no gore") asks for its absence and does not refuse.
        strictest = category.always_on
        own = [
            f
            for f in found.present(_CATEGORY_PREFIX + category.name, strictest)
            if strictest or not f.negated
        ]
        if own:
            return _terms_of(own)
        for rule in category.rules:
            parts = [found.present(group, strictest) for group in rule.all_of]
            if not all(parts):
                continue
            if not strictest and all(f.negated for part in parts for f in part):
                continue
            if not strict and any(found.affirmed(group) for group in rule.none_of):
                continue
            return tuple(dict.fromkeys(part[0].hit.term for part in parts))
        return ()

    def _findings(self, text: str, tokens: tuple[Token, ...]) -> list[_Finding]:
        hits = self._index.find(tokens) | self._age_hits(tokens)
        hits = _drop_exceptions(hits)
        hits |= _pair_hits(hits)
        negated_tokens = _tokens_in_spans(tokens, negated_spans(text))
        negated = self._negated(hits, negated_tokens)
        allowed_tokens = _covered(h for h in hits if h.group == _ALLOW)
        findings = [
            _Finding(hit, hit in negated, set(range(hit.start, hit.end)) <= allowed_tokens)
            for hit in hits
        ]
        for finding in list(findings):
            implied = self._negations.get(finding.hit.group)
            if implied and finding.negated:
                hit = finding.hit
                synthetic = Hit(implied, f"no {hit.term}", hit.form, hit.start, hit.end)
                findings.append(_Finding(synthetic, False, finding.allowed))
        return findings

    def _negated(self, hits: set[Hit], negated_tokens: set[int]) -> set[Hit]:
        """Hits inside a negated span, or after a negator with only filler words between."""
        negator_ends = {h.end for h in hits if h.group == NEGATOR_GROUP}
        filler = _covered(h for h in hits if h.group == FILLER_GROUP)
        negated = set()
        for hit in hits:
            if negated_tokens & set(range(hit.start, hit.end)):
                negated.add(hit)
                continue
            position = hit.start
            for _ in range(self.spec.negation_window + 1):
                if position in negator_ends:
                    negated.add(hit)
                    break
                if position - 1 not in filler:
                    break
                position -= 1
        return negated

    def _age_hits(self, tokens: tuple[Token, ...]) -> set[Hit]:
        """A stated age under the adult age ("12 years old", "aged 9", "16yo")."""
        words = [t.plain for t in tokens]
        hits = set()
        for index in range(len(words)):
            age, end = _stated_age(words, index)
            if age is not None and age < self.spec.adult_age:
                hits.add(Hit(AGE_GROUP, f"{age} years old", 0, index, end))
        return hits


def _number(word: str) -> int | None:
    if word.isdigit() and len(word) <= 3:
        return int(word)
    return _NUMBER_WORDS.get(word)


def _stated_age(words: list[str], index: int) -> tuple[int | None, int]:
    word = words[index]
    compact = _AGE_SUFFIX_RE.fullmatch(word)
    if compact:
        return int(compact.group(1)), index + 1
    number = _number(word)
    if number is not None:
        for suffix in _AGE_AFTER:
            if tuple(words[index + 1 : index + 1 + len(suffix)]) == suffix:
                return (0 if suffix[0].startswith(("month", "week")) else number), (
                    index + 1 + len(suffix)
                )
    if word in _AGE_BEFORE and index + 1 < len(words):
        number = _number(words[index + 1])
        if number is not None:
            # "under 18" states an age below 18.
            return (number - 1 if word == "under" else number), index + 2
    return None, index


def _pair_hits(hits: set[Hit]) -> set[Hit]:
    """A hit spanning two different public figures named apart ("Trump kissing Putin").

    Names that share a word ("Barack Obama", "Michelle Obama") are taken for one family and
    do not make a pair.
    """
    figures = sorted(
        (h for h in hits if h.group == PUBLIC_FIGURE_GROUP), key=lambda h: (h.start, h.end)
    )
    for first in figures:
        for second in figures:
            apart = first.end <= second.start
            if apart and not set(first.term.split()) & set(second.term.split()):
                term = f"{first.term} and {second.term}"
                return {Hit(PAIR_GROUP, term, first.form, first.start, second.end)}
    return set()


def _drop_exceptions(hits: set[Hit]) -> set[Hit]:
    """Hits of a group that lie inside one of that group's exception phrases do not count."""
    excused: dict[str, set[int]] = {}
    for hit in hits:
        if hit.group.startswith(_EXCEPT_PREFIX):
            group = hit.group.removeprefix(_EXCEPT_PREFIX)
            excused.setdefault(group, set()).update(range(hit.start, hit.end))
    return {
        hit
        for hit in hits
        if not hit.group.startswith(_EXCEPT_PREFIX)
        and not set(range(hit.start, hit.end)) <= excused.get(hit.group, set())
    }


def _covered(hits: Iterable[Hit]) -> set[int]:
    return {index for hit in hits for index in range(hit.start, hit.end)}


def _tokens_in_spans(tokens: tuple[Token, ...], spans: tuple[tuple[int, int], ...]) -> set[int]:
    return {
        index
        for index, token in enumerate(tokens)
        if any(start <= token.start < end for start, end in spans)
    }


def _terms_of(findings: list[_Finding]) -> tuple[str, ...]:
    """Distinct terms, one per matched place (the longest spelling when several fit)."""
    by_place: dict[tuple[int, int], str] = {}
    for finding in findings:
        place = (finding.hit.start, finding.hit.end)
        if len(finding.hit.term) > len(by_place.get(place, "")):
            by_place[place] = finding.hit.term
    return tuple(dict.fromkeys(by_place[place] for place in sorted(by_place)))
