"""Prompt text normalization for the safety gate: folds evasions back to the words they spell."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# An ASCII capital I looks like a lower-case l ("chiId"); it is kept apart through case
# folding so that the leet forms can read it as either.
_CAPITAL_I = "\ue000"

# Look-alikes from other scripts that NFKC leaves alone, after case folding.
_HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "г": "r", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h",
    "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ш": "w",
    "щ": "w", "ъ": "b", "ь": "b", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "ӏ": "l", "һ": "h", "ү": "y", "ɡ": "g", "ո": "n", "ս": "u",
    # Greek
    "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "ζ": "z", "η": "n", "θ": "o",
    "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o", "π": "n", "ρ": "p", "σ": "o",
    "ς": "c", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Latin variants, IPA and small capitals
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɐ": "a", "ɛ": "e", "ɩ": "i", "ɪ": "i", "ʀ": "r",
    "ʏ": "y", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g",
    "ʜ": "h", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
    "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "ø": "o", "đ": "d",
    "ł": "l", "ħ": "h", "ŀ": "l", "ƒ": "f", "æ": "ae", "œ": "oe", "þ": "th",
}  # fmt: skip

# Letters drawn inside squares and circles that have no compatibility decomposition.
_ENCLOSED_LETTER_BLOCKS = (0x1F150, 0x1F170, 0x1F1E6)

# Characters that render as nothing but are not format characters.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f")

_LEET_COMMON = {
    "0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "€": "e", "¢": "c", "|": "l",
}  # fmt: skip
_LEET_SYMBOLS = "@$!|€¢"
# A piece is a run of letters and digits, plus leet symbols that stand before a letter or digit.
_PIECE_RE = re.compile(r"(?:[^\W_]|\ue000|[@$!|€¢](?=[@$!|€¢]*(?:[^\W_]|\ue000)))+")
_REPEAT_RE = re.compile(r"([^\W\d_])\1{2,}")
# Characters that hide a letter inside a word ("n*ked", "g#re"): each stands for one letter.
MASK_CHARS = frozenset("*#?")
# Numbers with a short unit ("13yo", "4k", "1920s") read better as written than as leetspeak.
_NUMBER_WITH_UNIT_RE = re.compile(r"\d+[a-z]{0,3}")


@dataclass(frozen=True)
class Token:
    """One word-piece of a prompt, in the three spellings the matcher checks."""

    plain: str  # folded letters, digits kept as written
    leet_i: str  # leetspeak undone, reading 1 and a capital I as i
    leet_il: str  # leetspeak undone, then i and l written alike ("d1sembowe11ed")
    chunk: int  # pieces written without whitespace between them share a chunk
    start: int  # offset of the piece in the folded text
    end: int
    masked: int = 0  # mask characters ("n*ked") right before this piece in its chunk


@dataclass(frozen=True)
class NormalizedText:
    """A prompt after folding: readable text, the token forms checked, and the tokens."""

    text: str  # readable: spaced or dotted letters joined, leetspeak undone, long repeats cut
    forms: tuple[str, ...]  # each distinct spelling of the tokens: plain, leet, leet with i = l
    tokens: tuple[Token, ...]


def fold_text(text: str) -> str:
    """Fold characters: NFKC, case, marks, invisibles, controls and look-alike letters."""
    text = unicodedata.normalize("NFKC", text).replace("I", _CAPITAL_I)
    text = unicodedata.normalize("NFD", text.casefold())
    out: list[str] = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Mn", "Me", "Cf") or char in _INVISIBLE_LETTERS:
            continue
        if category in ("Cc", "Zs", "Zl", "Zp"):
            out.append(" ")
        else:
            out.append(_fold_letter(char))
    return unicodedata.normalize("NFC", "".join(out))


def _fold_letter(char: str) -> str:
    code = ord(char)
    for block in _ENCLOSED_LETTER_BLOCKS:
        if block <= code < block + 26:
            return chr(ord("a") + code - block)
    return _HOMOGLYPHS.get(char, char)


def _undo_leet(piece: str) -> str:
    chars = ["i" if c in ("1", _CAPITAL_I) else _LEET_COMMON.get(c, c) for c in piece]
    return "".join(chars)


def fold_i_l(word: str) -> str:
    """Write l as i: 1, I, l and | stand for each other in leetspeak."""
    return word.replace("l", "i")


def _has_letter(piece: str) -> bool:
    return any(c.isalpha() or c == _CAPITAL_I for c in piece)


def _raw_pieces(folded: str) -> list[tuple[str, int, int, int, int]]:
    """(piece, start, end, whitespace chunk index, mask characters before it) per piece."""
    pieces: list[tuple[str, int, int, int, int]] = []
    for chunk_index, chunk in enumerate(re.finditer(r"\S+", folded)):
        previous_end: int | None = None
        for match in _PIECE_RE.finditer(chunk.group()):
            gap = chunk.group()[previous_end : match.start()] if previous_end is not None else ""
            masked = len(gap) if gap and set(gap) <= MASK_CHARS else 0
            start = chunk.start() + match.start()
            pieces.append((match.group(), start, start + len(match.group()), chunk_index, masked))
            previous_end = match.end()
    return pieces


def _merge_spaced_letters(pieces: list[tuple[str, int, int, int, int]]) -> list[int]:
    """Chunk ids where runs of three or more one-character chunks ("n u d e") count as one."""
    sizes: dict[int, int] = {}
    for _, _, _, chunk, _ in pieces:
        sizes[chunk] = sizes.get(chunk, 0) + 1
    single = [len(p[0]) == 1 and sizes[p[3]] == 1 for p in pieces]
    chunks = [p[3] for p in pieces]
    i = 0
    while i < len(pieces):
        j = i
        while j < len(pieces) and single[j]:
            j += 1
        if j - i >= 3:
            for k in range(i + 1, j):
                chunks[k] = chunks[i]
        i = max(j, i + 1)
    return chunks


def tokenize(folded: str) -> tuple[Token, ...]:
    """Split folded text into tokens; undo leetspeak where a chunk holds letters."""
    pieces = _raw_pieces(folded)
    chunks = _merge_spaced_letters(pieces)
    # Chunks written one character at a time ("n.0.0.d", "n 0 0 d") that include a letter.
    spelled = {c for (p, *_), c in zip(pieces, chunks, strict=True) if _has_letter(p)}
    spelled -= {c for (p, *_), c in zip(pieces, chunks, strict=True) if len(p) > 1}
    tokens: list[Token] = []
    for (piece, start, end, _, masked), chunk in zip(pieces, chunks, strict=True):
        plain = piece.replace(_CAPITAL_I, "i")
        # A digit spelled out among letters is leet; "16:9" and "clothes::-1" are numbers.
        is_word = _has_letter(piece) or chunk in spelled
        if not is_word:
            plain = "".join(c for c in plain if c.isdigit())
            if not plain:
                continue
            tokens.append(Token(plain, plain, plain, chunk, start, end))
            continue
        leet_i = _undo_leet(piece)
        plain = "".join(c for c in plain if c not in _LEET_SYMBOLS) or leet_i
        tokens.append(Token(plain, leet_i, fold_i_l(leet_i), chunk, start, end, masked))
    return tuple(tokens)


def readable(tokens: tuple[Token, ...]) -> str:
    """Join tokens for people to read: letters spelled out one by one are written together."""
    spelled = {t.chunk for t in tokens} - {t.chunk for t in tokens if len(t.leet_i) > 1}
    words: list[str] = []
    previous_chunk: int | None = None
    for token in tokens:
        as_written = len(token.plain) > 1 and _NUMBER_WITH_UNIT_RE.fullmatch(token.plain)
        shown = token.plain if as_written else token.leet_i
        if token.chunk == previous_chunk and token.chunk in spelled:
            words[-1] += shown
        else:
            words.append(shown)
        previous_chunk = token.chunk
    return " ".join(_REPEAT_RE.sub(r"\1", word) for word in words)


def normalize(text: str) -> NormalizedText:
    """Fold and tokenize a prompt; return the readable text and every form the matcher checks."""
    if not isinstance(text, str):
        raise ValueError(f"prompt text must be a str, got {type(text).__name__}")
    tokens = tokenize(fold_text(text))
    forms: list[str] = []
    for form in (
        " ".join(t.plain for t in tokens),
        " ".join(t.leet_i for t in tokens),
        " ".join(t.leet_il for t in tokens),
    ):
        if form not in forms:
            forms.append(form)
    return NormalizedText(text=readable(tokens), forms=tuple(forms), tokens=tokens)
