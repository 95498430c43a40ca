"""Scores a policy on a labelled prompt list: refusal rates, per-category precision and recall."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagineer.safety.policy import Decision, Policy

LABELS = ("allowed", "disallowed", "evasion")


@dataclass(frozen=True)
class LabelledPrompt:
    """One line of the labelled list."""

    prompt: str
    label: str  # allowed | disallowed | evasion
    category: str | None  # the category it belongs to, None when allowed
    technique: str  # how an evasion hides, or "ordinary" / "tricky" / "plain"
    split: str  # "dev" (the policy was tuned on it) or "holdout"


@dataclass(frozen=True)
class Rate:
    """`hits` of `total`."""

    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0


@dataclass(frozen=True)
class CategoryScore:
    """How one category fared: recall on its prompts, precision of its refusals."""

    category: str
    recall: Rate  # its prompts refused under this category
    refused: Rate  # its prompts refused under any category
    precision: Rate  # refusals under this category whose prompt belongs to it


@dataclass(frozen=True)
class Mistake:
    """A prompt the policy got wrong."""

    prompt: str
    label: str
    expected: str | None
    got: str | None


@dataclass(frozen=True)
class Evaluation:
    """The scores of one policy on one labelled list."""

    allowed_refused: Rate  # should be low
    disallowed_refused: Rate
    evasions_refused: Rate
    categories: tuple[CategoryScore, ...]
    techniques: tuple[tuple[str, Rate], ...]  # evasions refused, by technique
    mistakes: tuple[Mistake, ...]

    @property
    def harmful_refused(self) -> Rate:
        """Disallowed prompts and evasions together."""
        a, b = self.disallowed_refused, self.evasions_refused
        return Rate(a.hits + b.hits, a.total + b.total)


def load_labelled(path: Path) -> tuple[LabelledPrompt, ...]:
    """Read a JSON-lines labelled list, checking each line."""
    prompts = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") not in LABELS:
            raise ValueError(f"{path}:{number}: label must be one of {LABELS}, got {row!r}")
        if (row["label"] == "allowed") != (row.get("category") is None):
            raise ValueError(f"{path}:{number}: only allowed prompts have no category: {row!r}")
        prompts.append(
            LabelledPrompt(
                row["prompt"],
                row["label"],
                row.get("category"),
                row.get("technique", ""),
                row.get("split", "dev"),
            )
        )
    return tuple(prompts)


def evaluate(policy: Policy, prompts: Sequence[LabelledPrompt]) -> Evaluation:
    """Check every prompt and score the decisions."""
    decisions = [policy.check(p.prompt) for p in prompts]
    pairs = list(zip(prompts, decisions, strict=True))

    def refused(label: str) -> Rate:
        chosen = [d for p, d in pairs if p.label == label]
        return Rate(sum(not d.allowed for d in chosen), len(chosen))

    evasions = [(p, d) for p, d in pairs if p.label == "evasion"]
    techniques = sorted({p.technique for p, _ in evasions})
    return Evaluation(
        allowed_refused=refused("allowed"),
        disallowed_refused=refused("disallowed"),
        evasions_refused=refused("evasion"),
        categories=tuple(_category_scores(pairs)),
        techniques=tuple(
            (t, _refused_rate(d for p, d in evasions if p.technique == t)) for t in techniques
        ),
        mistakes=tuple(_mistakes(pairs)),
    )


def _refused_rate(decisions: Iterable[Decision]) -> Rate:
    chosen = list(decisions)
    return Rate(sum(not d.allowed for d in chosen), len(chosen))


def _category_scores(pairs: list[tuple[LabelledPrompt, Decision]]) -> list[CategoryScore]:
    names = sorted({p.category for p, _ in pairs if p.category} | {
        d.category for _, d in pairs if d.category
    })  # fmt: skip
    scores = []
    for name in names:
        own = [d for p, d in pairs if p.category == name]
        claimed = [p for p, d in pairs if d.category == name]
        scores.append(
            CategoryScore(
                category=name,
                recall=Rate(sum(d.category == name for d in own), len(own)),
                refused=_refused_rate(own),
                precision=Rate(sum(p.category == name for p in claimed), len(claimed)),
            )
        )
    return scores


def _mistakes(pairs: list[tuple[LabelledPrompt, Decision]]) -> list[Mistake]:
    return [
        Mistake(p.prompt, p.label, p.category, d.category)
        for p, d in pairs
        if (p.label == "allowed") != d.allowed or (not d.allowed and d.category != p.category)
    ]
