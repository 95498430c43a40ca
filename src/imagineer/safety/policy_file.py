"""Reads and validates safety policy files (TOML), naming the key and line to fix on error."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

ALWAYS_ON = "minors_sexual"  # the category no policy file may switch off, narrow or excuse
AGE_GROUP = "minor"  # the stated-age detector adds its hits to this group
NEGATOR_GROUP = "negator"
FILLER_GROUP = "negation_filler"
PUBLIC_FIGURE_GROUP = "public_figure"  # filled from [policy] public_figures
PAIR_GROUP = "public_figure_pair"  # the gate adds a hit when two different figures are named
_REQUIRED_GROUPS = (AGE_GROUP, NEGATOR_GROUP, FILLER_GROUP, PUBLIC_FIGURE_GROUP)
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_TOP_KEYS = {"policy", "detectors", "categories", "groups", "negations"}
_POLICY_KEYS = {"version", "allow", "deny", "public_figures"}
_DETECTOR_KEYS = {"adult_age", "negation_window"}
_CATEGORY_KEYS = {"label", "enabled", "terms", "rules"}
_GROUP_KEYS = {"terms", "except"}
_RULE_KEYS = {"all_of", "none_of"}
_NEGATION_KEYS = {"negated", "implies"}


class PolicyError(ValueError):
    """A policy file that cannot be used: says which file, line and key, and what to fix."""

    def __init__(self, source: str, key: str, line: int | None, problem: str) -> None:
        self.source = source
        self.key = key
        self.line = line
        self.problem = problem
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {key}: {problem}")


@dataclass(frozen=True)
class Rule:
    """Refuse when every `all_of` group matched and no `none_of` group matched un-negated."""

    all_of: tuple[str, ...]
    none_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class CategorySpec:
    """One refusal category: its terms, co-occurrence rules and whether it is on."""

    name: str
    label: str
    enabled: bool
    terms: tuple[str, ...]
    rules: tuple[Rule, ...]

    @property
    def always_on(self) -> bool:
        return self.name == ALWAYS_ON


@dataclass(frozen=True)
class GroupSpec:
    """A named list of terms that rules refer to, with phrases that do not count."""

    name: str
    terms: tuple[str, ...]
    exceptions: tuple[str, ...]


@dataclass(frozen=True)
class Negation:
    """A negated word of group `negated` ("--no clothes") counts as a word of `implies`."""

    negated: str
    implies: str


@dataclass(frozen=True)
class PolicySpec:
    """A validated policy: the shipped default with an operator's file applied on top."""

    allow: tuple[str, ...]
    deny: tuple[str, ...]
    adult_age: int
    negation_window: int
    categories: tuple[CategorySpec, ...]  # in the order they are checked
    groups: tuple[GroupSpec, ...]
    negations: tuple[Negation, ...]
    sources: tuple[str, ...]  # the files it was read from


class _Locator:
    """Maps TOML key paths to line numbers (tomllib keeps none) for error messages."""

    _HEADER_RE = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY_RE = re.compile(r"\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.keys: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        counts: dict[tuple[str, ...], int] = {}
        depth = 0
        for number, line in enumerate(self.lines, start=1):
            header = self._HEADER_RE.match(line) if depth == 0 else None
            key = self._KEY_RE.match(line) if depth == 0 and not header else None
            if header:
                table = _split_key(header.group(2))
                if header.group(1) == "[[":
                    counts[table] = counts.get(table, -1) + 1
                    table = (*table, str(counts[table]))
                self.keys.setdefault(table, number)
            elif key:
                self.keys.setdefault((*table, *_split_key(key.group(1))), number)
            depth += _bracket_balance(line)

    def line(self, key: tuple[str, ...], value: str | None = None) -> int | None:
        for size in range(len(key), 0, -1):
            found = self.keys.get(key[:size])
            if found is not None:
                return self._value_line(found, value) if size == len(key) else found
        return None

    def _value_line(self, start: int, value: str | None) -> int:
        if value is None:
            return start
        for number in range(start, min(start + 400, len(self.lines) + 1)):
            text = self.lines[number - 1]
            if f'"{value}"' in text or f"'{value}'" in text:
                return number
        return start


def _split_key(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in key.split("."))


def _bracket_balance(line: str) -> int:
    balance, quote = 0, ""
    for char in line:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        elif char in "[{":
            balance += 1
        elif char in "]}":
            balance -= 1
    return balance


@dataclass(frozen=True)
class _File:
    """One policy file's text, parsed, with a helper that builds errors pointing into it."""

    source: str
    data: dict[str, Any]
    locator: _Locator

    def error(self, key: tuple[str, ...], problem: str, value: str | None = None) -> PolicyError:
        return PolicyError(self.source, ".".join(key), self.locator.line(key, value), problem)


def _read_file(text: str, source: str) -> _File:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        line = int(found.group(1)) if found else None
        raise PolicyError(source, "(syntax)", line, f"not valid TOML: {exc}") from exc
    return _File(source, data, _Locator(text))


def _check_keys(file: _File, table: Any, key: tuple[str, ...], allowed: set[str]) -> dict:
    if not isinstance(table, dict):
        raise file.error(key, f"expected a table, got {type(table).__name__}")
    for name in table:
        if name not in allowed:
            expected = ", ".join(sorted(allowed))
            raise file.error((*key, name), f"unknown key; expected one of: {expected}")
    return table


def _strings(file: _File, value: Any, key: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise file.error(key, f"expected a list of strings, got {type(value).__name__}")
    for item in value:
        if not isinstance(item, str):
            raise file.error(key, f"expected only strings in the list, got {item!r}")
        if not re.search(r"[^\W_]", item):
            raise file.error(key, f"term {item!r} holds no letters or digits", item)
    return tuple(value)


def _bool(file: _File, value: Any, key: tuple[str, ...]) -> bool:
    if not isinstance(value, bool):
        raise file.error(key, f"expected true or false, got {value!r}")
    return value


def _int(file: _File, value: Any, key: tuple[str, ...], low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise file.error(key, f"expected a whole number from {low} to {high}, got {value!r}")
    return value


@dataclass
class _Draft:
    """The policy being assembled, layer by layer (default first, then the operator's)."""

    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    adult_age: int = 18
    negation_window: int = 4
    labels: dict[str, str] = field(default_factory=dict)  # insertion order = check order
    enabled: dict[str, bool] = field(default_factory=dict)
    terms: dict[str, list[str]] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    exceptions: dict[str, list[str]] = field(default_factory=dict)
    negations: list[Negation] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def protected_groups(self) -> set[str]:
        """Groups whose narrowing would weaken the always-on category."""
        protected = {NEGATOR_GROUP, FILLER_GROUP}
        for rule in self.rules.get(ALWAYS_ON, []):
            protected.update(rule.all_of)
        protected.update(n.negated for n in self.negations if n.implies in protected)
        return protected


def _apply_policy_table(draft: _Draft, file: _File, operator: bool) -> None:
    table = _check_keys(file, file.data.get("policy", {}), ("policy",), _POLICY_KEYS)
    if "version" in table and table["version"] != 1:
        raise file.error(("policy", "version"), f"unsupported version {table['version']!r}; use 1")
    draft.allow += _strings(file, table.get("allow", []), ("policy", "allow"))
    draft.deny += _strings(file, table.get("deny", []), ("policy", "deny"))
    figures = _strings(file, table.get("public_figures", []), ("policy", "public_figures"))
    draft.groups.setdefault(PUBLIC_FIGURE_GROUP, []).extend(figures)
    key = ("detectors",)
    detectors = _check_keys(file, file.data.get("detectors", {}), key, _DETECTOR_KEYS)
    if "adult_age" in detectors:
        low = draft.adult_age if operator else 1
        draft.adult_age = _int(file, detectors["adult_age"], (*key, "adult_age"), low, 150)
    if "negation_window" in detectors:
        low = draft.negation_window if operator else 1
        value = detectors["negation_window"]
        draft.negation_window = _int(file, value, (*key, "negation_window"), low, 12)


def _apply_groups(draft: _Draft, file: _File, operator: bool) -> None:
    protected = draft.protected_groups() if operator else set()
    groups = file.data.get("groups", {})
    if not isinstance(groups, dict):
        raise file.error(("groups",), "expected [groups.<name>] tables")
    for name, table in groups.items():
        key = ("groups", name)
        if not _NAME_RE.fullmatch(name):
            raise file.error(key, "group names use lower-case letters, digits and _")
        _check_keys(file, table, key, _GROUP_KEYS)
        draft.groups.setdefault(name, []).extend(
            _strings(file, table.get("terms", []), (*key, "terms"))
        )
        exceptions = _strings(file, table.get("except", []), (*key, "except"))
        added = set(exceptions) - set(draft.exceptions.get(name, []))
        if added and name in protected:
            problem = (
                f"group {name!r} guards the {ALWAYS_ON} category and cannot be given exceptions"
            )
            raise file.error((*key, "except"), problem)
        draft.exceptions.setdefault(name, []).extend(exceptions)


def _apply_categories(draft: _Draft, file: _File, operator: bool) -> None:
    categories = file.data.get("categories", {})
    if not isinstance(categories, dict):
        raise file.error(("categories",), "expected [categories.<name>] tables")
    for name, table in categories.items():
        key = ("categories", name)
        if not _NAME_RE.fullmatch(name):
            raise file.error(key, "category names use lower-case letters, digits and _")
        _check_keys(file, table, key, _CATEGORY_KEYS)
        if name not in draft.labels and not isinstance(table.get("label"), str):
            raise file.error((*key, "label"), "a new category needs a label (a short description)")
        if "label" in table:
            if not isinstance(table["label"], str) or not table["label"].strip():
                raise file.error(
                    (*key, "label"), f"expected a non-empty string, got {table['label']!r}"
                )
            draft.labels[name] = table["label"]
        enabled = _bool(
            file, table.get("enabled", draft.enabled.get(name, True)), (*key, "enabled")
        )
        if name == ALWAYS_ON and not enabled:
            raise file.error(
                (*key, "enabled"), "sexual content involving minors cannot be disabled"
            )
        draft.enabled[name] = enabled
        draft.terms.setdefault(name, []).extend(
            _strings(file, table.get("terms", []), (*key, "terms"))
        )
        draft.rules.setdefault(name, []).extend(
            _rules(file, table.get("rules", []), (*key, "rules"))
        )


def _rules(file: _File, value: Any, key: tuple[str, ...]) -> list[Rule]:
    if not isinstance(value, list):
        raise file.error(key, f"expected a list of {{ all_of = [...] }} tables, got {value!r}")
    rules = []
    for item in value:
        _check_keys(file, item, key, _RULE_KEYS)
        all_of = _strings(file, item.get("all_of", []), key)
        if not all_of:
            raise file.error(key, "each rule needs a non-empty all_of list of group names")
        rules.append(Rule(all_of, _strings(file, item.get("none_of", []), key)))
    return rules


def _apply_negations(draft: _Draft, file: _File) -> None:
    value = file.data.get("negations", [])
    if not isinstance(value, list):
        raise file.error(("negations",), "expected [[negations]] tables")
    for index, table in enumerate(value):
        key = ("negations", str(index))
        _check_keys(file, table, key, _NEGATION_KEYS)
        if not isinstance(table.get("negated"), str) or not isinstance(table.get("implies"), str):
            raise file.error(key, "each [[negations]] needs string keys negated and implies")
        draft.negations.append(Negation(table["negated"], table["implies"]))


def _check_references(draft: _Draft, file: _File, first_negation: int) -> None:
    """Every group named in a rule or negation must exist."""
    known = set(draft.groups)
    for name in _REQUIRED_GROUPS:
        if name not in known:
            raise file.error(("groups", name), "this group is required; define it")
    for category, rules in draft.rules.items():
        for rule in rules:
            for group in (*rule.all_of, *rule.none_of):
                if group not in known:
                    key: tuple[str, ...] = ("categories", category, "rules")
                    raise file.error(
                        key, f"unknown group {group!r}; define [groups.{group}]", group
                    )
    for index, negation in enumerate(draft.negations[first_negation:]):
        for group in (negation.negated, negation.implies):
            if group not in known:
                key = ("negations", str(index))
                raise file.error(key, f"unknown group {group!r}; define [groups.{group}]", group)


def _apply(draft: _Draft, file: _File, operator: bool) -> None:
    for name in file.data:
        if name not in _TOP_KEYS:
            raise file.error(
                (name,), f"unknown key; expected one of: {', '.join(sorted(_TOP_KEYS))}"
            )
    first_negation = len(draft.negations)
    _apply_policy_table(draft, file, operator)
    _apply_categories(draft, file, operator)
    _apply_negations(draft, file)
    _apply_groups(draft, file, operator)
    _check_references(draft, file, first_negation)
    draft.sources.append(file.source)


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _freeze(draft: _Draft) -> PolicySpec:
    categories = tuple(
        CategorySpec(
            name=name,
            label=label,
            enabled=draft.enabled[name],
            terms=_unique(draft.terms[name]),
            rules=tuple(dict.fromkeys(draft.rules[name])),
        )
        for name, label in draft.labels.items()
    )
    groups = tuple(
        GroupSpec(name, _unique(terms), _unique(draft.exceptions.get(name, [])))
        for name, terms in draft.groups.items()
    )
    return PolicySpec(
        allow=_unique(draft.allow),
        deny=_unique(draft.deny),
        adult_age=draft.adult_age,
        negation_window=draft.negation_window,
        categories=tuple(sorted(categories, key=lambda c: not c.always_on)),
        groups=groups,
        negations=tuple(dict.fromkeys(draft.negations)),
        sources=tuple(draft.sources),
    )


def default_policy_text() -> str:
    """The TOML text of the policy shipped with the package."""
    return resources.files("imagineer.safety").joinpath("default_policy.toml").read_text("utf-8")


def read_policy_spec(path: Path | None = None, text: str | None = None) -> PolicySpec:
    """The default policy, with the operator's file (a path, or its text) applied on top."""
    draft = _Draft()
    _apply(draft, _read_file(default_policy_text(), "default policy"), operator=False)
    if path is not None and text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(
                str(path), "(file)", None, f"cannot read the policy file: {exc}"
            ) from exc
    if text is not None:
        source = str(path) if path is not None else "policy text"
        _apply(draft, _read_file(text, source), operator=True)
    return _freeze(draft)
