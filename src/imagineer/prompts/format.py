"""Write a Request back as canonical prompt text that parses to the same Request."""

from __future__ import annotations

from imagineer.prompts.params import specs
from imagineer.prompts.request import Params, Request
from imagineer.prompts.syntax import escape, format_number


def format_request(req: Request) -> str:
    """Canonical prompt text: `parse(format_request(r)) == r` for every valid request.

    Image prompts come first, then the text parts (with `::weight` when there are several
    or the weight is not 1), then every parameter that differs from its default, in table order.
    """
    if not isinstance(req, Request):
        raise TypeError(f"format_request needs a Request, got {type(req).__name__}")
    pieces = list(req.image_prompts)
    pieces += _format_parts(req)
    defaults = Params()
    for spec in specs():
        value = getattr(req.params, spec.field)
        if spec.alternate or value == getattr(defaults, spec.field):
            continue
        pieces.append(f"--{spec.name} {spec.codec.write(value)}".rstrip())
    return " ".join(pieces)


def _format_parts(req: Request) -> list[str]:
    parts = req.prompts
    if len(parts) == 1 and parts[0].weight == 1:
        return [escape(parts[0].text)]
    # A part ending in ":" gets a space before "::", or ":::" would split one colon early.
    return [
        f"{escape(p.text)}{' ::' if p.text.endswith(':') else '::'}{format_number(p.weight)}"
        for p in parts
    ]
