"""The procedural world the embedded model learns from: scenes, a renderer and captions."""

from imagineer.world.captions import Caption, PromptSpec, caption, describe, held_out_prompts
from imagineer.world.render import render
from imagineer.world.scene import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    Attribute,
    ObjectGroup,
    Scene,
    held_out_combinations,
    is_held_out,
    sample_scene,
)

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "Attribute",
    "Caption",
    "ObjectGroup",
    "PromptSpec",
    "Scene",
    "caption",
    "describe",
    "held_out_combinations",
    "held_out_prompts",
    "is_held_out",
    "render",
    "sample_scene",
]
