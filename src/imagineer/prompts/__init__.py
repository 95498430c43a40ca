"""The prompt language: Midjourney-style text to frozen, typed requests (pure Python, no torch)."""

from imagineer.prompts.errors import PromptError
from imagineer.prompts.format import format_request
from imagineer.prompts.parse import parse, parse_all
from imagineer.prompts.request import Params, Request
from imagineer.prompts.sizes import size_for_aspect
from imagineer.prompts.weighted import WeightedText

__all__ = [
    "Params",
    "PromptError",
    "Request",
    "WeightedText",
    "format_request",
    "parse",
    "parse_all",
    "size_for_aspect",
]
