"""Engines: the model families behind one contract (see base.py)."""

from imagineer.engines.base import (
    Cancelled,
    Capability,
    Engine,
    EngineError,
    EngineInfo,
    GenerationInput,
    GenerationOutput,
    RunControl,
)
from imagineer.engines.registry import EngineRegistry, EngineSpec

__all__ = [
    "Cancelled",
    "Capability",
    "Engine",
    "EngineError",
    "EngineInfo",
    "EngineRegistry",
    "EngineSpec",
    "GenerationInput",
    "GenerationOutput",
    "RunControl",
]
