"""The user's own checkpoints: a registry of diffusers models and LoRAs, their loading, and the
memory-counted cache the diffusers engines share."""

from imagineer.models.catalog import Catalog, CatalogError, LoraRef, ModelEntry
from imagineer.models.sources import AddOptions, entry_for

__all__ = ["AddOptions", "Catalog", "CatalogError", "LoraRef", "ModelEntry", "entry_for"]
