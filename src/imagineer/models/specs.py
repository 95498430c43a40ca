"""Registered models as engine specs: what the router sees before any weights load."""

from __future__ import annotations

from imagineer.engines.base import Engine
from imagineer.engines.registry import EngineRegistry, EngineSpec
from imagineer.models.catalog import ModelEntry
from imagineer.models.families import family
from imagineer.models.loading import ModelManager, why_not_loadable


def diffusers_spec(entry: ModelEntry, manager: ModelManager) -> EngineSpec:
    """The spec of one registered model; loading it builds the image or video engine."""

    def load() -> Engine:
        if family(entry.family).kind == "video":
            from imagineer.engines.diffusers_video import DiffusersVideoEngine

            return DiffusersVideoEngine(entry, manager)
        from imagineer.engines.diffusers_image import DiffusersImageEngine

        return DiffusersImageEngine(entry, manager)

    return EngineSpec(
        name=entry.name,
        family=entry.family,
        capabilities=entry.capability_set,
        load=load,
        available=lambda: why_not_loadable(entry),
        description=entry.description,
    )


def register_models(registry: EngineRegistry, manager: ModelManager) -> None:
    """Every registered model (not LoRAs) as an engine of `registry`."""
    for entry in manager.catalog.models():
        registry.register(diffusers_spec(entry, manager), replace=True)
