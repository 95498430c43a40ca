"""Choosing an output format, for images and clips alike: by name, or from a path's suffix."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar


class _Format(Protocol):
    @property
    def name(self) -> str: ...  # "png", "mp4", …: what fmt= and --format accept

    @property
    def suffix(self) -> str: ...  # ".png", ".mp4", …: what a path without one gets


F = TypeVar("F", bound=_Format)


def find_format(
    name: str, formats: Sequence[F], kind: str, aliases: Mapping[str, str] | None = None
) -> F:
    """The format of `formats` called `name` (case and a leading dot ignored, `aliases` mapped
    to names); ValueError naming the `kind` and the supported formats otherwise."""
    key = name.lower().lstrip(".")
    key = (aliases or {}).get(key, key)
    for fmt in formats:
        if fmt.name == key:
            return fmt
    supported = ", ".join(f.name for f in formats)
    raise ValueError(f"unknown {kind} format {name!r}: use one of {supported}")


def resolve_format_path(
    path: Path, fmt: str | None, lookup: Callable[[str], F], supported: Sequence[str]
) -> tuple[Path, F]:
    """The path to write and its format: from `fmt` when given, else from the suffix.

    A path without a suffix gets the format's suffix; a suffix naming another format is an error.
    """
    if fmt is None:
        if not path.suffix:
            raise ValueError(
                f"{path.name!r} has no suffix: add one or pass fmt ({', '.join(supported)})"
            )
        return path, lookup(path.suffix)
    chosen = lookup(fmt)
    if not path.suffix:
        return path.with_name(path.name + chosen.suffix), chosen
    try:
        named = lookup(path.suffix)
    except ValueError:
        return path, chosen  # a suffix of the caller's own, e.g. ".v2": keep it
    if named != chosen:
        raise ValueError(f"{path.name!r} ends in {path.suffix} but fmt={fmt!r}: make them agree")
    return path, chosen
