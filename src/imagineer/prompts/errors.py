"""PromptError: a problem in prompt text, pointing at the token that caused it."""

from __future__ import annotations

import unicodedata


class PromptError(ValueError):
    """A prompt that cannot be read, with the character span of the bad token.

    `str(err)` shows the prompt line, a caret line under the token and the message.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str,
        span: tuple[int, int],
        suggestion: str | None = None,
    ) -> None:
        start, end = span
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"span {span} does not lie inside a text of {len(text)} characters")
        super().__init__(message)
        self.message = message
        self.text = text
        self.span = (start, end)
        self.suggestion = suggestion

    @property
    def token(self) -> str:
        """The bad token itself (empty when the problem is a missing token)."""
        return self.text[self.span[0] : self.span[1]]

    @property
    def full_message(self) -> str:
        """The message with the suggestion, if any, appended."""
        if self.suggestion is None:
            return self.message
        return f"{self.message}, did you mean {self.suggestion}?"

    def __str__(self) -> str:
        line, carets = _caret_lines(self.text, self.span)
        return f"{line}\n{carets}\n{self.full_message}"

    def __reduce__(self) -> tuple[object, tuple[str, str, tuple[int, int], str | None]]:
        # Keyword-only arguments defeat the default exception pickling (workers pass errors on).
        return (_rebuild, (self.message, self.text, self.span, self.suggestion))


def _rebuild(message: str, text: str, span: tuple[int, int], suggestion: str | None) -> PromptError:
    return PromptError(message, text=text, span=span, suggestion=suggestion)


def _width(text: str) -> int:
    """Terminal columns of `text`: wide East Asian characters take two, combining marks none."""
    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def _caret_lines(text: str, span: tuple[int, int]) -> tuple[str, str]:
    """The line of `text` holding the span's start, and a caret line under the span."""
    start, end = span
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    if line_end < 0:
        line_end = len(text)
    # Tabs would be drawn at unknown widths, so both lines show them as single spaces.
    line = text[line_start:line_end].replace("\t", " ")
    before = _width(text[line_start:start].replace("\t", " "))
    under = _width(text[start : min(end, line_end)].replace("\t", " "))
    return line, " " * before + "^" * max(1, under)
