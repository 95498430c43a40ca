"""imagineer: a self-hosted studio for images and short videos from text."""

__version__ = "0.1.0"
