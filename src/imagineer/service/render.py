"""Running planned batches on their engines and writing every output with its recipe and marks."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


@dataclass(frozen=True)
class Work:
    """One service call's planned batches and where its outputs go: what `produce` renders."""

    kind: Kind
    batches: Sequence[Batch]
    out_dir: Path | None
    user: str
    hooks: Hooks
    source: Source | None = None
    route_s: float = 0.0


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
        work = Work(kind, batches, out_dir, user, hooks, source, route_s)
        started = time.perf_counter()
        outputs = self.generate(batches, hooks)
        return self.finish(work, outputs, time.perf_counter() - started)

    def produce_many(self, works: Sequence[Work]) -> list[GenerationResult | Exception]:
        """Several calls at once (queued jobs): their inputs share engine batches where they
        are compatible, and each call's outputs are written and answered on their own. Item i
        answers works[i]: its result, or the exception that ended it."""
        started = time.perf_counter()
        outputs = self.generate_together(works)
        generate_s = time.perf_counter() - started
        answers: list[GenerationResult | Exception] = []
        for work, outs in zip(works, outputs, strict=True):
            if isinstance(outs, Exception):
                answers.append(outs)
                continue
            try:
                answers.append(self.finish(work, outs, generate_s))
            except Exception as exc:  # one call's failure to write is not its batch mates'
                answers.append(exc)
        return answers

    def finish(
        self, work: Work, outputs: Sequence[Sequence[GenerationOutput]], generate_s: float
    ) -> GenerationResult:
        """Write a call's generated outputs (and a grid per batch); return its result."""
        written_at = time.perf_counter()
        kind, batches = work.kind, work.batches
        folder = work.out_dir if work.out_dir is not None else self.runtime.settings.output_dir
        images: list[OutputImage] = []
        grids: list[Path] = []
        withheld: list[str] = []
        for batch, outs in zip(batches, outputs, strict=True):
            written, grid, refused = self._write_batch(
                kind, batch, outs, folder, work.user, work.source
            )
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
            timings=Timings(work.route_s, generate_s, time.perf_counter() - written_at),
            warnings=tuple(dict.fromkeys(w for b in batches for w in b.grid.warnings)),
            withheld=tuple(withheld),
        )

    def generate_together(
        self, works: Sequence[Work]
    ) -> list[list[list[GenerationOutput]] | Exception]:
        """Every work's outputs, with compatible inputs of different works in one engine call.

        A call's failure fails every work in it. A work cancelled before a call leaves it; one
        call stops early only when every work in it is cancelled. Previews go only to the work
        whose item leads the call, so no one sees another's image in progress.
        """
        calls = _merged_calls(works)
        outcome: list[dict[tuple[int, int], GenerationOutput] | Exception] = [{} for _ in works]
        totals = [0] * len(works)
        for call in calls:
            for w in dict.fromkeys(w for w, _, _ in call.items):
                totals[w] += call.steps
        steps = [_Steps(work.hooks, total) for work, total in zip(works, totals, strict=True)]
        for call in calls:
            for w in dict.fromkeys(w for w, _, _ in call.items):
                cancel = works[w].hooks.should_cancel
                if not isinstance(outcome[w], Exception) and cancel is not None and cancel():
                    outcome[w] = Cancelled("cancelled before generation finished")
            items = [it for it in call.items if not isinstance(outcome[it[0]], Exception)]
            if not items:
                continue
            members = list(dict.fromkeys(w for w, _, _ in items))
            try:
                outs = self._run_call(works, call, items, members, steps)
            except Exception as exc:
                for w in members:
                    outcome[w] = exc
                continue
            for (w, b, i), out in zip(items, outs, strict=True):
                found = outcome[w]
                if isinstance(found, dict):
                    found[(b, i)] = out
            for w in members:
                steps[w].advance(call.steps)
        return [
            found
            if isinstance(found, Exception)
            else [
                [found[(b, i)] for i in range(len(batch.grid.inputs))]
                for b, batch in enumerate(work.batches)
            ]
            for work, found in zip(works, outcome, strict=True)
        ]

    def _run_call(
        self,
        works: Sequence[Work],
        call: _Call,
        items: Sequence[tuple[int, int, int]],
        members: Sequence[int],
        steps: Sequence[_Steps],
    ) -> list[GenerationOutput]:
        lead = items[0][0]
        hooks = works[lead].hooks

        def report(step: int, total: int, preview: np.ndarray | None = None) -> None:
            for w in members:
                steps[w].report(step, total, preview if w == lead else None)

        def all_cancelled() -> bool:
            cancels = [works[w].hooks.should_cancel for w in members]
            return all(c is not None and c() for c in cancels)

        every = preview_every(call.steps) if hooks.on_preview else 0
        control = RunControl(report, all_cancelled, preview_every=every)
        inputs = [works[w].batches[b].grid.inputs[i] for w, b, i in items]
        outs = call.route.engine.generate(inputs, control)
        if len(outs) != len(inputs):
            raise RuntimeError(f"engine {call.route.name!r} returned {len(outs)} of {len(inputs)}")
        return outs

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
        kept: list[tuple[Image.Image, Recipe, Path]] = []
        withheld: list[str] = []
        for index, (item, out) in enumerate(zip(grid.inputs, outs, strict=True)):
            image = array_to_image(out.image)
            refusal = self._check_output(image, user, grid.prompt)
            if refusal is not None:
                withheld.append(f"image {index}: {refusal}")
                continue
            recipe = recipe_for(kind, batch, item, out, index, source)
            name = f"{stem}_{index}" if len(outs) > 1 else stem
            kept.append((image, recipe, unique_path(folder, name)))
        writes = [(image, path, recipe) for image, recipe, path in kept]
        if len(grid.inputs) > 1 and len(kept) > 1:
            sheet = make_grid([image for image, _, _ in kept], cols=planning.GRID_COLS)
            recipe = grid_recipe([recipe for _, recipe, _ in kept])
            writes.append((sheet, unique_path(folder, f"{stem}_grid"), recipe))
        # labelling (watermark, PNG encoding, signing) spends its time outside the GIL: the
        # cells and the grid are written side by side
        pool = _label_pool()
        written = list(pool.map(lambda w: _write(w[0], w[1], w[2], marking, source), writes))
        grid_path = written[len(kept)].path if len(written) > len(kept) else None
        return written[: len(kept)], grid_path, withheld

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


@dataclass(frozen=True)
class _Call:
    """One engine call of merged work: (work, batch, input) positions of its items."""

    route: Route
    steps: int
    items: tuple[tuple[int, int, int], ...]


def _merged_calls(works: Sequence[Work]) -> list[_Call]:
    """Inputs of every work grouped by engine and batch key, in chunks of the engine's max."""
    groups: dict[tuple[object, ...], list[tuple[int, int, int]]] = {}
    routes: dict[tuple[object, ...], Route] = {}
    for w, work in enumerate(works):
        for b, batch in enumerate(work.batches):
            for i, item in enumerate(batch.grid.inputs):
                key: tuple[object, ...] = (
                    batch.route.name,
                    id(batch.route.engine),
                    item.batch_key(),
                )
                groups.setdefault(key, []).append((w, b, i))
                routes.setdefault(key, batch.route)
    calls = []
    for group, positions in groups.items():
        route = routes[group]
        size = max(1, route.engine.info.max_batch)
        for start in range(0, len(positions), size):
            chunk = tuple(positions[start : start + size])
            w, b, i = chunk[0]
            calls.append(_Call(route, works[w].batches[b].grid.inputs[i].steps, chunk))
    return calls


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


@functools.cache
def _label_pool() -> ThreadPoolExecutor:
    """Threads that write and label outputs (shared by every render in the process)."""
    return ThreadPoolExecutor(
        max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="label"
    )


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
