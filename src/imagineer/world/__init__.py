"""The procedural world the embedded model learns from: scenes, a renderer and captions."""

from imagineer.world.scene import ATTRIBUTES, ObjectGroup, Scene, is_held_out, sample_scene

__all__ = ["ATTRIBUTES", "ObjectGroup", "Scene", "is_held_out", "sample_scene"]
