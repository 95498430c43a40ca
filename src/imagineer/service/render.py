"""Running planned batches on their engines and writing every output with its recipe and marks."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from imagineer.engines.base import Cancelled, GenerationInput, GenerationOutput, RunControl
from imagineer.media.images import array_to_image, make_grid
from imagineer.provenance.recipe import Kind, Recipe
from imagineer.router import Route
from imagineer.safety import Decision
from imagineer.service import plan as planning
from imagineer.service.outputs import Marking, output_stem, unique_path, write_output
from imagineer.service.previews import PreviewFn, preview_every
from imagineer.service.results import GenerationResult, OutputImage, SafetyRefusal, Timings

if TYPE_CHECKING:
    from imagineer.runtime import Runtime

ProgressFn = Callable[[int, int], None]  # (steps done, steps in all) over the whole call
CancelFn = Callable[[], bool]
OUTPUT_REFUSED = "output_refused"


@dataclass(frozen=True)
class Source:
    """The input file of a derived output (vary, upscale, remix)."""

    path: Path
    recipe: Recipe | None
    digest: str  # sha256 of the file's bytes: the derived recipe's parent

    @property
    def user_media(self) -> bool:
        """A file without imagineer's recipe is taken to be the user's own picture."""
        return self.recipe is None


@dataclass(frozen=True)
class Batch:
    """One grid (or single image) to render with one engine."""

    route: Route
    grid: planning.PlannedGrid


@dataclass(frozen=True)
class Hooks:
    """How a caller follows and stops one call."""

    on_progress: ProgressFn | None = None
    should_cancel: CancelFn | None = None
    on_preview: PreviewFn | None = None  # the image in progress, every few steps


class _Steps:
    """Turns each engine call's (step, total) into progress over the whole service call."""

    def __init__(self, hooks: Hooks, total: int) -> None:
        self.on_progress, self.on_preview = hooks.on_progress, hooks.on_preview
        self.total, self.base = total, 0

    def report(self, step: int, _total: int, preview: np.ndarray | None = None) -> None:
        done = min(self.base + step, self.total)
        if preview is not None and self.on_preview is not None:
            self.on_preview(done, self.total, preview)
        if self.on_progress is not None:
            self.on_progress(done, self.total)

    def advance(self, steps: int) -> None:
        self.base += steps
        self.report(0, self.total)


class Renderer:
    """Generates planned batches and writes their outputs, as the runtime's settings say."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def produce(
        self,
        kind: Kind,
        batches: Sequence[Batch],
        *,
        out_dir: Path | None,
        user: str,
        hooks: Hooks,
        source: Source | None = None,
        route_s: float = 0.0,
    ) -> GenerationResult:
        """Generate every batch, write the images (and a grid per batch), return the result."""
        started = time.perf_counter()
        outputs = self.generate(batches, hooks)
        generated = time.perf_counter()
        folder = out_dir if out_dir is not None else self.runtime.settings.output_dir
        images: list[OutputImage] = []
        grids: list[Path] = []
        withheld: list[str] = []
        for batch, outs in zip(batches, outputs, strict=True):
            written, grid, refused = self._write_batch(kind, batch, outs, folder, user, source)
            images += written
            grids += [grid] if grid is not None else []
            withheld += refused
        if not images and withheld:
            raise SafetyRefusal(Decision(False, OUTPUT_REFUSED, withheld[0], (), ""))
        first = batches[0].route
        return GenerationResult(
            kind=kind,
            images=tuple(images),
            grids=tuple(grids),
            seeds=tuple(b.grid.seed for b in batches),
            engine=", ".join(dict.fromkeys(b.route.name for b in batches)),
            model_id=first.engine.info.model_id,
            route_reason=first.reason,
            timings=Timings(route_s, generated - started, time.perf_counter() - generated),
            warnings=tuple(dict.fromkeys(w for b in batches for w in b.grid.warnings)),
            withheld=tuple(withheld),
        )

    def generate(self, batches: Sequence[Batch], hooks: Hooks) -> list[list[GenerationOutput]]:
        """Every batch's outputs. Each grid runs as its own engine call (in chunks of at most
        the engine's max batch): batch composition changes the last bit of some pixels, so
        this keeps an output reproducible from its own grid's recipe alone."""
        calls = [
            (b, [i for i, _ in group])
            for b, batch in enumerate(batches)
            for group in planning.group_batches(
                batch.grid.inputs, batch.route.engine.info.max_batch
            )
        ]
        total = sum(batches[b].grid.inputs[chunk[0]].steps for b, chunk in calls)
        steps = _Steps(hooks, total)
        results: list[dict[int, GenerationOutput]] = [{} for _ in batches]
        for b, chunk in calls:
            if hooks.should_cancel is not None and hooks.should_cancel():
                raise Cancelled("cancelled before generation finished")
            route, inputs = batches[b].route, batches[b].grid.inputs
            every = preview_every(inputs[chunk[0]].steps) if hooks.on_preview else 0
            control = RunControl(steps.report, hooks.should_cancel, preview_every=every)
            outs = route.engine.generate([inputs[i] for i in chunk], control)
            if len(outs) != len(chunk):
                raise RuntimeError(f"engine {route.name!r} returned {len(outs)} of {len(chunk)}")
            results[b].update(zip(chunk, outs, strict=True))
            steps.advance(inputs[chunk[0]].steps)
        return [[found[i] for i in range(len(found))] for found in results]

    def _write_batch(
        self,
        kind: Kind,
        batch: Batch,
        outs: Sequence[GenerationOutput],
        folder: Path,
        user: str,
        source: Source | None,
    ) -> tuple[list[OutputImage], Path | None, list[str]]:
        """Write the batch's images (and its grid); return them and why any were withheld."""
        grid = batch.grid
        stem = output_stem(kind, grid.inputs[0].prompt, grid.seed)
        marking = self.marking()
        cells: list[tuple[Image.Image, OutputImage]] = []
        withheld: list[str] = []
        for index, (item, out) in enumerate(zip(grid.inputs, outs, strict=True)):
            image = array_to_image(out.image)
            refusal = self._check_output(image, user, grid.prompt)
            if refusal is not None:
                withheld.append(f"image {index}: {refusal}")
                continue
            recipe = recipe_for(kind, batch, item, out, index, source)
            name = f"{stem}_{index}" if len(outs) > 1 else stem
            cells.append((image, _write(image, unique_path(folder, name), recipe, marking, source)))
        grid_path = None
        if len(grid.inputs) > 1 and len(cells) > 1:
            sheet = make_grid([image for image, _ in cells], cols=planning.GRID_COLS)
            recipe = grid_recipe([written.recipe for _, written in cells])
            path = unique_path(folder, f"{stem}_grid")
            grid_path = _write(sheet, path, recipe, marking, source).path
        return [written for _, written in cells], grid_path, withheld

    def marking(self) -> Marking:
        """The marks the settings ask for (the signing identity is made on first use)."""
        settings = self.runtime.settings
        return Marking(
            watermark=settings.watermark,
            identity=self.runtime.identity if settings.sign else None,
            marker=self.runtime.watermarker if settings.watermark else None,
        )

    def _check_output(self, image: Image.Image, user: str, prompt: str) -> str | None:
        """None when the image may be kept; else the reason (the refusal is recorded)."""
        checker = self.runtime.output_checker
        if checker is None:
            return None
        decision = checker.check(image)
        if decision.allowed:
            return None
        self.runtime.store.record_refusal(
            user_id=user,
            category=decision.category or OUTPUT_REFUSED,
            normalized_prompt=prompt,
            message=decision.reason,
        )
        return decision.reason


def recipe_for(
    kind: Kind,
    batch: Batch,
    item: GenerationInput,
    out: GenerationOutput,
    index: int,
    source: Source | None,
) -> Recipe:
    """The recipe of one output: what ran, on which weights, from which input."""
    info = batch.route.engine.info
    request = batch.grid.request
    height, width = out.image.shape[:2]
    extras = {
        **planning.input_extras(item),
        **dict(out.extras),
        "route": batch.route.reason,
        "batch": len(batch.grid.inputs),  # the grid it ran in: remix re-runs all of it
    }
    return Recipe(
        prompt=batch.grid.prompt,
        kind=kind,
        engine=batch.route.name,
        model=info.model_id,
        model_hash=info.model_hash,
        seed=out.seed,
        steps=out.steps,
        guidance=out.guidance,
        width=width,
        height=height,
        request=request.to_dict() if request is not None else {},
        index=index,
        parent=source.digest if source is not None else None,
        negative_prompt=item.negative_prompt,
        positive_prompt=item.prompt,
        extras=extras,
    )


def grid_recipe(cells: Sequence[Recipe]) -> Recipe:
    """A grid's recipe: its first cell's, marked as a grid and listing every cell's seed."""
    first = cells[0]
    seeds = ",".join(str(recipe.seed) for recipe in cells)
    return dataclasses.replace(first, extras={**first.extras, "grid": "2x2", "grid_seeds": seeds})


def _write(
    image: Image.Image, path: Path, recipe: Recipe, marking: Marking, source: Source | None
) -> OutputImage:
    """A generation is `created`; an output made from another file is an edit of it."""
    if source is None:
        written = write_output(image, path, recipe, marking)
    else:
        written = write_output(
            image,
            path,
            recipe,
            marking,
            action="edited",
            parents=[source.path],
            mixes_user_media=source.user_media,
        )
    return OutputImage(written.path, recipe, written.watermarked, written.signed)
