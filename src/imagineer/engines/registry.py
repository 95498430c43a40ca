"""A registry of installed engines: declared up front, loaded lazily, cached once loaded."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from imagineer.engines.base import Capability, Engine, EngineError


@dataclass(frozen=True)
class EngineSpec:
    """What the router needs to know about an engine before paying to load it."""

    name: str
    family: str
    capabilities: frozenset[Capability]
    load: Callable[[], Engine]  # builds the engine (reads weights); called at most once
    available: Callable[[], str | None] = lambda: None  # None when usable, else why not
    description: str = ""


class EngineRegistry:
    """Engines by name; `get` loads on first use and keeps the instance."""

    def __init__(self) -> None:
        self._specs: dict[str, EngineSpec] = {}
        self._loaded: dict[str, Engine] = {}
        # re-entrant: an engine built over another (embedded-video over embedded) gets it inside
        self._lock = threading.RLock()

    def register(self, spec: EngineSpec, *, replace: bool = False) -> None:
        if (
            not spec.name
            or not spec.name.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise ValueError(f"engine name {spec.name!r}: use letters, digits, '-', '_' and '.'")
        if spec.name in self._specs and not replace:
            raise ValueError(f"engine {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        self._loaded.pop(spec.name, None)

    def specs(self) -> list[EngineSpec]:
        return list(self._specs.values())

    def spec(self, name: str) -> EngineSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise EngineError(self._unknown(name)) from None

    def get(self, name: str) -> Engine:
        """The loaded engine called `name`, loading it on first use."""
        spec = self.spec(name)
        with self._lock:
            engine = self._loaded.get(name)
            if engine is None:
                why_not = spec.available()
                if why_not is not None:
                    raise EngineError(f"engine {name!r} is not available: {why_not}")
                engine = spec.load()
                self._loaded[name] = engine
            return engine

    def remove(self, name: str) -> None:
        """Forget the engine called `name` (a model removed from the catalog)."""
        with self._lock:
            self._specs.pop(name, None)
            self._loaded.pop(name, None)

    def unload(self, name: str) -> None:
        with self._lock:
            self._loaded.pop(name, None)

    def _unknown(self, name: str) -> str:
        known = sorted(self._specs)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f", did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(known) if known else "none"
        return f"unknown model {name!r}{hint} (installed: {listing})"
