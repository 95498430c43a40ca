"""Finds policy terms in tokenized prompts, tolerant of stretched letters and split words."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby

from imagineer.safety.normalize import Token, fold_i_l, fold_text, tokenize

_MASK = "*"  # how a hidden letter is written in a candidate word

# Words that are never glued to a neighbour across whitespace: "pen is" must not read "penis".
_STOPWORDS = frozenset({
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "am", "of", "in", "on", "at",
    "to", "by", "for", "with", "and", "or", "nor", "but", "as", "it", "its", "he", "she",
    "his", "her", "him", "they", "them", "their", "we", "us", "our", "you", "your", "i", "me",
    "my", "this", "that", "these", "those", "so", "if", "no", "not", "up", "do", "does", "did",
    "go", "goes", "has", "have", "had", "can", "will", "would", "should", "could", "just",
    "very", "from", "into", "onto", "out", "off", "over", "under", "than", "then", "there",
    "here", "what", "when", "where", "who", "why", "how", "all", "any", "some", "each",
})  # fmt: skip
_STOPWORDS_IL = frozenset(fold_i_l(word) for word in _STOPWORDS)
# How many whitespace gaps one matched word may bridge ("c hi ld" bridges two).
_MAX_GAPS = 2
_MIN_COMPOUND_PART = 3
# A masked word ("n*ked") is read as a policy word only when enough letters show.
_MIN_SHOWN_LETTERS = 3
_MAX_VARIANTS = 4  # readings of one run of pieces: masks as letters, or as plain gaps


@dataclass(frozen=True)
class Term:
    """A policy phrase: the group it belongs to, as written, and its normalized words."""

    group: str
    phrase: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Hit:
    """One place a term matched: in which token form and over which tokens."""

    group: str
    term: str  # the phrase as written in the policy
    form: int  # 0 plain, 1 leet undone, 2 leet undone with i and l alike
    start: int  # first token index
    end: int  # one past the last token index


@dataclass(frozen=True)
class _Word:
    squeezed: str  # letters with repeats cut to one: "teen" -> "ten"
    runs: tuple[int, ...]  # length of each run: "teen" -> (1, 2, 1)


# Squeezed first word -> (term, keys of all its words).
_Index = dict[str, list[tuple["Term", tuple[_Word, ...]]]]


def _word(text: str) -> _Word:
    groups = [(char, len(list(run))) for char, run in groupby(text)]
    return _Word("".join(char for char, _ in groups), tuple(size for _, size in groups))


def _covers(text: _Word, term: _Word) -> bool:
    """Text spells the term with the same or longer letter runs: "nuuude" covers "nude",
    "ten" does not cover "teen"."""
    return text.squeezed == term.squeezed and all(
        a >= b for a, b in zip(text.runs, term.runs, strict=True)
    )


def _spellings(unit: str, allow_suffix: bool, memo: dict[str, _Word]) -> Iterator[_Word]:
    """The unit as written, and without a plural "s" or "es" (or the slang "z": "nudez")."""
    variants = [unit]
    if allow_suffix and len(unit) > 3 and unit.endswith("s"):
        variants.append(unit[:-1])
        if unit.endswith("es"):
            variants.append(unit[:-2])
    elif allow_suffix and len(unit) > 3 and unit.endswith("z") and not unit.endswith("zz"):
        variants += [unit[:-1] + "s", unit[:-1]]
    for variant in variants:
        if variant not in memo:
            memo[variant] = _word(variant)
        yield memo[variant]


def _masked_words(unit: str, vocabulary: dict[int, tuple[str, ...]]) -> list[str]:
    """Policy words that `unit` spells with some letters masked ("g*re" -> "gore")."""
    shown = len(unit) - unit.count(_MASK)
    if shown < _MIN_SHOWN_LETTERS or unit.count(_MASK) * 2 > shown:
        return []
    pairs = [(i, c) for i, c in enumerate(unit) if c != _MASK]
    return [w for w in vocabulary.get(len(unit), ()) if all(w[i] == c for i, c in pairs)]


def term_words(phrase: str) -> tuple[str, ...]:
    """The normalized words of a policy phrase (empty when it holds no letters or digits)."""
    return tuple(token.plain for token in tokenize(fold_text(phrase)))


class TermIndex:
    """All terms of a policy, indexed by their first word for fast lookup."""

    def __init__(self, terms: Iterable[Term]) -> None:
        # Two indexes: words as spelled, and words with l written as i (for the third form).
        self._indexes: tuple[_Index, _Index] = ({}, {})
        words_by_length: tuple[dict[int, set[str]], dict[int, set[str]]] = ({}, {})
        self._max_len = 1
        for term in terms:
            variants = [term.words]
            if len(term.words) > 1:
                variants.append(("".join(term.words),))
            for words in variants:
                folded = tuple(map(fold_i_l, words))
                for index, spelled, lengths in zip(
                    self._indexes, (words, folded), words_by_length, strict=True
                ):
                    for w in spelled:
                        lengths.setdefault(len(w), set()).add(w)
                    keys = tuple(_word(w) for w in spelled)
                    index.setdefault(keys[0].squeezed, []).append((term, keys))
                    self._max_len = max(self._max_len, *(len(k.squeezed) for k in keys))
        self._vocabularies = tuple(
            {size: tuple(sorted(ws)) for size, ws in lengths.items()} for lengths in words_by_length
        )

    def find(self, tokens: Sequence[Token]) -> set[Hit]:
        """Every hit of every term in every distinct spelling of the tokens."""
        chunks = [t.chunk for t in tokens]
        masks = [t.masked for t in tokens]
        seen: list[tuple[bool, list[str]]] = []
        hits: set[Hit] = set()
        for form, words in enumerate(
            [[t.plain for t in tokens], [t.leet_i for t in tokens], [t.leet_il for t in tokens]]
        ):
            folded = form == 2
            if (folded, words) in seen:
                continue
            seen.append((folded, words))
            index = self._indexes[1 if folded else 0]
            stopwords = _STOPWORDS_IL if folded else _STOPWORDS
            vocabulary = self._vocabularies[1 if folded else 0]
            scan = _Scan(words, chunks, masks, self._max_len, stopwords, vocabulary)
            for start in range(len(words)):
                hits.update(self._hits_at(index, scan, form, start))
            hits.update(self._compound_hits(index, words, form, scan.memo))
        return hits

    def _hits_at(self, index: _Index, scan: _Scan, form: int, start: int) -> Iterator[Hit]:
        for end, unit in scan.units(start):
            for spelling_index, spelling in enumerate(scan.spellings(unit, True)):
                for term, keys in index.get(spelling.squeezed, ()):
                    if spelling_index > 0 and len(keys) > 1:
                        continue
                    if not _covers(spelling, keys[0]):
                        continue
                    stop = scan.match_rest(end, keys[1:])
                    if stop is not None:
                        yield Hit(term.group, term.phrase, form, start, stop)

    @staticmethod
    def _single_word_terms(index: _Index, text: str, memo: dict[str, _Word]) -> list[Term]:
        found: list[Term] = []
        for spelling in _spellings(text, True, memo):
            for term, keys in index.get(spelling.squeezed, ()):
                if len(keys) == 1 and _covers(spelling, keys[0]):
                    found.append(term)
        return found

    def _compound_hits(
        self, index: _Index, words: list[str], form: int, memo: dict[str, _Word]
    ) -> Iterator[Hit]:
        """Two terms written as one word ("nudechild"): both count, each at that token."""
        for position, word in enumerate(words):
            if len(word) < 2 * _MIN_COMPOUND_PART or len(word) > 2 * self._max_len:
                continue
            for cut in range(_MIN_COMPOUND_PART, len(word) - _MIN_COMPOUND_PART + 1):
                left = self._single_word_terms(index, word[:cut], memo)
                right = self._single_word_terms(index, word[cut:], memo) if left else []
                for term in left + right if right else []:
                    yield Hit(term.group, term.phrase, form, position, position + 1)


class _Scan:
    """Builds candidate words from consecutive tokens of one form."""

    def __init__(
        self,
        words: list[str],
        chunks: list[int],
        masks: list[int],
        max_len: int,
        stopwords: frozenset[str],
        vocabulary: dict[int, tuple[str, ...]],
    ) -> None:
        self.words = words
        self.chunks = chunks
        self.masks = masks
        self.max_len = max_len
        self.stopwords = stopwords
        self.vocabulary = vocabulary
        self.memo: dict[str, _Word] = {}  # spellings already split into letter runs

    def units(self, start: int) -> Iterator[tuple[int, str]]:
        """(end, text) for tokens start..end glued together: pieces of one chunk always,
        pieces across whitespace only when neither is a common short word. Pieces split by
        mask characters are glued both ways: "n*ked" as "nked" and as "n*ked"."""
        texts = [""]
        gaps = 0
        squeezed_len = 0
        for end in range(start, len(self.words)):
            word = self.words[end]
            if end > start and self.chunks[end] != self.chunks[end - 1]:
                gaps += 1
                if gaps > _MAX_GAPS or {word, self.words[end - 1]} & self.stopwords:
                    return
            squeezed_len += len(self.word(word).squeezed) - (texts[0][-1:] == word[:1])
            if squeezed_len > self.max_len:
                return
            masked = _MASK * self.masks[end] if end > start else ""
            texts = [text + word for text in texts] + (
                [text + masked + word for text in texts] if masked else []
            )
            texts = texts[:_MAX_VARIANTS]
            for text in texts:
                yield end + 1, text

    def spellings(self, unit: str, allow_suffix: bool) -> Iterator[_Word]:
        """`_spellings` of the unit, or of each policy word it spells with letters masked."""
        if _MASK not in unit:
            yield from _spellings(unit, allow_suffix, self.memo)
            return
        for word in _masked_words(unit, self.vocabulary):
            yield from _spellings(word, False, self.memo)

    def word(self, text: str) -> _Word:
        if text not in self.memo:
            self.memo[text] = _word(text)
        return self.memo[text]

    def match_rest(self, position: int, keys: tuple[_Word, ...]) -> int | None:
        """Index after the remaining words of a phrase, matched from position, or None."""
        if not keys:
            return position
        last = len(keys) == 1
        for end, unit in self.units(position):
            if any(_covers(s, keys[0]) for s in self.spellings(unit, last)):
                stop = self.match_rest(end, keys[1:])
                if stop is not None:
                    return stop
        return None
