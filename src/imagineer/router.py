"""Picks the engine for a request by capability, --model and availability, or explains why not."""

from __future__ import annotations

from dataclasses import dataclass

from imagineer.engines.base import Capability, Engine, EngineError
from imagineer.engines.registry import EngineRegistry


class RoutingError(EngineError):
    """No engine can take the request; the message lists what was considered and why."""


@dataclass(frozen=True)
class Route:
    """The chosen engine and how it was chosen (recorded in the recipe)."""

    engine: Engine
    name: str
    reason: str
    fell_back: bool = False


class Router:
    """Chooses among registered engines; the default model is used when none is named."""

    def __init__(self, registry: EngineRegistry, *, default: str = "embedded") -> None:
        self._registry = registry
        self._default = default

    def route(
        self, capability: Capability, *, model: str | None = None, allow_fallback: bool = False
    ) -> Route:
        if model is not None:
            model, how = self._by_family(model, capability)
            refusal = self._refusal(model, capability)
            if refusal is None:
                return Route(self._registry.get(model), model, how)
            if not allow_fallback:
                raise RoutingError(refusal)
            # The default model first: it is the one that always works.
            if model != self._default and self._refusal(self._default, capability) is None:
                route = Route(self._registry.get(self._default), self._default, "")
            else:
                route = self._first_capable(capability, exclude=model)
            return Route(route.engine, route.name, f"fell back: {refusal}; used {route.name}", True)
        if self._refusal(self._default, capability) is None:
            return Route(self._registry.get(self._default), self._default, "default model")
        return self._first_capable(capability, exclude=None)

    def _by_family(self, model: str, capability: Capability) -> tuple[str, str]:
        """--model may name a family (sdxl, flux, ltx, …): its first ready model that can do
        `capability` then stands in. Returns the engine name and how it was chosen."""
        names = {spec.name for spec in self._registry.specs()}
        if model in names:
            return model, f"--model {model}"
        family = [spec.name for spec in self._registry.specs() if spec.family == model]
        for name in family:
            if self._refusal(name, capability) is None:
                return name, f"--model {model}: family {model}, model {name}"
        return (family[0], f"--model {model}") if family else (model, f"--model {model}")

    def _first_capable(self, capability: Capability, *, exclude: str | None) -> Route:
        reasons = []
        for spec in self._registry.specs():
            if spec.name == exclude:
                continue
            refusal = self._refusal(spec.name, capability)
            if refusal is None:
                return Route(
                    self._registry.get(spec.name),
                    spec.name,
                    f"first engine that can do {capability.value}",
                )
            reasons.append(refusal)
        detail = "; ".join(reasons) if reasons else "no engines are installed"
        raise RoutingError(f"no engine can do {capability.value}: {detail}")

    def _refusal(self, name: str, capability: Capability) -> str | None:
        """None when `name` can take the request, else a sentence saying why not."""
        try:
            spec = self._registry.spec(name)
        except EngineError as exc:
            return str(exc)
        if capability not in spec.capabilities:
            can = ", ".join(sorted(c.value for c in spec.capabilities))
            return f"{name} cannot do {capability.value} (it can do {can})"
        why_not = spec.available()
        if why_not is not None:
            return f"{name} is not available: {why_not}"
        return None
