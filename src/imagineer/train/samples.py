"""Sample sheets of the embedded model for its model card: showcase prompts by seed, labelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from imagineer.engines.base import Capability, GenerationInput, RunControl
from imagineer.engines.embedded.engine import EmbeddedEngine, stylize_to_guidance

SHOWCASE: tuple[str, ...] = (
    "a futuristic city at sunset with flying cars",
    "three red balloons over the sea at dawn",
    "snowy mountains at night under the stars",
    "two yellow boats on a foggy sea, watercolor",
    "a neon skyline at dusk in the rain",
    "a green house in the forest at noon, pixel art",
)

LABEL_HEIGHT = 22


def sample_sheet(
    engine: EmbeddedEngine,
    prompts: Sequence[str] = SHOWCASE,
    *,
    seeds: Sequence[int] = (0, 1, 2, 3),
    size: int = 256,
    steps: int | None = None,
) -> Image.Image:
    """One row per prompt (its text above), one column per seed, at the engine's defaults."""
    steps = steps or engine.info.default_steps
    rows: list[Image.Image] = []
    for prompt in prompts:
        batch = [
            GenerationInput(
                capability=Capability.TEXT_TO_IMAGE,
                prompt=prompt,
                width=size,
                height=size,
                seed=seed,
                steps=steps,
                guidance=stylize_to_guidance(100),
            )
            for seed in seeds
        ]
        outputs = engine.generate(batch, RunControl())
        row = Image.new("RGB", (size * len(seeds), size + LABEL_HEIGHT), (18, 18, 22))
        ImageDraw.Draw(row).text((6, 5), prompt, fill=(235, 235, 235))
        for i, out in enumerate(outputs):
            row.paste(Image.fromarray(out.image), (i * size, LABEL_HEIGHT))
        rows.append(row)
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    return sheet


def write_sheet(out: Path, prompts: Sequence[str] = SHOWCASE, size: int = 256) -> Path:
    """Render the showcase sheet with the shipped weights and save it as a PNG."""
    sheet = sample_sheet(EmbeddedEngine.load(), prompts, size=size)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out
