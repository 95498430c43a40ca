"""The service layer: each feature once (imagine, vary, upscale, remix, verify, jobs).

The CLI, the HTTP server and the Python API all call `Service`; none of them parses prompts,
routes, generates or writes files on its own.
"""

from __future__ import annotations

import builtins
import dataclasses
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from imagineer.engines.base import Capability, EngineInfo, GenerationInput
from imagineer.media.images import image_to_array, read_recipe
from imagineer.prompts import Request, format_request, parse, parse_all
from imagineer.provenance.recipe import Recipe, content_hash
from imagineer.router import Route
from imagineer.service import batching
from imagineer.service import plan as planning
from imagineer.service.jobs import (
    AnimateJob,
    ExtendJob,
    ImageJobRequest,
    ImagineJob,
    JobRequest,
    PinnedStyle,
    ReelJob,
    RemixJob,
    Strength,
    UpscaleJob,
    VaryJob,
    VideoJobRequest,
    check_factor,
    check_strength,
    from_payload,
    to_payload,
    with_absolute_paths,
)
from imagineer.service.previews import PreviewFn, PreviewWriter, preview_file
from imagineer.service.render import Batch, CancelFn, Hooks, ProgressFn, Renderer, Source, Work
from imagineer.service.results import GenerationResult, ModelSummary, NotAnOutput, SafetyRefusal
from imagineer.service.styles import (
    LOCAL_FILES,
    StyleResolver,
    StyleSources,
    load_styles,
    pin_styles,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from imagineer.jobs import Job, JobContext, JobState, Worker
    from imagineer.models import AddOptions, ModelEntry
    from imagineer.provenance.verify import Verdict
    from imagineer.runtime import Runtime
    from imagineer.service.video import VideoMaker


class Service:
    """imagineer's features over one Runtime."""

    def __init__(
        self, runtime: Runtime, *, seed_source: planning.SeedSource = planning.random_seed
    ) -> None:
        self.runtime = runtime
        self.renderer = Renderer(runtime)
        self._seed_source = seed_source

    # --- features ----------------------------------------------------------------------------

    def imagine(
        self,
        prompt_text: str,
        *,
        user: str = "local",
        out_dir: Path | None = None,
        steps: int | None = None,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        on_preview: PreviewFn | None = None,
        pinned: Sequence[PinnedStyle] | None = None,
    ) -> GenerationResult:
        """A 2x2 grid per request of `prompt_text`, every image saved with its marks.

        `steps` overrides what --q and --draft pick; `pinned`: a queued job's --sref files (None:
        read them from this machine now). Raises PromptError, SafetyRefusal, UnsupportedRequest,
        RoutingError, or Cancelled when `should_cancel` says so.
        """
        started = time.perf_counter()
        # 1-2. safety, parse, route, plan
        batches = self.plan_imagine(prompt_text, user=user, steps=steps, pinned=pinned)
        # 3. generate, 4. write with recipes and marks
        return self.renderer.produce(
            "imagine",
            batches,
            out_dir=out_dir,
            user=user,
            hooks=Hooks(on_progress, should_cancel, on_preview),
            route_s=time.perf_counter() - started,
        )

    def plan_imagine(
        self,
        prompt_text: str,
        *,
        user: str = "local",
        steps: int | None = None,
        pinned: Sequence[PinnedStyle] | None = None,
    ) -> builtins.list[Batch]:
        """What `imagine` would render: one planned grid per request, with its engine."""
        # 1. the safety gate, before any compute
        self.check_prompt(prompt_text, user)
        # 2. parse and check (before loading any model), route, plan
        requests = parse_all(prompt_text)
        for request in requests:
            planning.check_supported(request)
        batches = []
        for request in requests:
            styles = load_styles(request, resolver=self.style_resolver(user, pinned))
            route = self.route(planning.capability_for(request), model=request.params.model)
            grid = planning.plan_request(
                request,
                route.engine.info,
                seed_source=self._seed_source,
                steps=steps,
                styles=styles,
            )
            batches.append(Batch(route, grid))
        return batches

    def vary(
        self,
        path: Path,
        *,
        strength: Strength = "subtle",
        prompt: str | None = None,
        user: str = "local",
        out_dir: Path | None = None,
        steps: int | None = None,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        on_preview: PreviewFn | None = None,
        pinned: Sequence[PinnedStyle] | None = None,
    ) -> GenerationResult:
        """A 2x2 grid of variations of an image, with new seeds; strength subtle or strong.

        The prompt is the image's recipe's unless `prompt` is given (needed for a file that
        has no recipe, e.g. the user's own picture).
        """
        started = time.perf_counter()
        amount = check_strength(strength)
        source = self._source(path, "vary")
        request = self._request_for(source, prompt, user, "vary")
        model = source.recipe.engine if source.recipe else None
        route = self.route(Capability.IMAGE_TO_IMAGE, model=model, allow_fallback=True)
        image = _load_rgb(source.path)
        width, height = planning.native_size((image.shape[1], image.shape[0]), route.engine.info)
        grid = planning.plan_request(
            request.with_params(seed=None),  # variations always get new seeds
            route.engine.info,
            seed_source=self._seed_source,
            steps=steps,
            capability=Capability.IMAGE_TO_IMAGE,
            styles=load_styles(request, resolver=self.style_resolver(user, pinned)),
        )
        inputs = tuple(
            dataclasses.replace(item, width=width, height=height, init_image=image, strength=amount)
            for item in grid.inputs
        )
        return self.renderer.produce(
            "vary",
            [Batch(route, dataclasses.replace(grid, inputs=inputs))],
            out_dir=out_dir,
            user=user,
            hooks=Hooks(on_progress, should_cancel, on_preview),
            source=source,
            route_s=time.perf_counter() - started,
        )

    def upscale(
        self,
        path: Path,
        *,
        factor: int = 2,
        user: str = "local",
        out_dir: Path | None = None,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> GenerationResult:
        """The image at `factor` (2 or 4) times its size, by an engine that can upscale."""
        started = time.perf_counter()
        scale = check_factor(factor)
        source = self._source(path, "upscale")
        recipe = source.recipe
        model = recipe.engine if recipe else None
        route = self.route(Capability.UPSCALE, model=model, allow_fallback=True)
        image = _load_rgb(source.path)
        item = GenerationInput(
            capability=Capability.UPSCALE,
            prompt=recipe.text_prompt if recipe else "",
            negative_prompt=recipe.negative_prompt if recipe else "",
            width=image.shape[1] * scale,  # the output size
            height=image.shape[0] * scale,
            seed=recipe.seed if recipe else 0,
            steps=1,
            init_image=image,
            scale=scale,
        )
        request = planning.request_of(recipe) if recipe else None
        grid = planning.PlannedGrid(
            request, recipe.prompt if recipe else "", item.seed, False, (item,)
        )
        return self.renderer.produce(
            "upscale",
            [Batch(route, grid)],
            out_dir=out_dir,
            user=user,
            hooks=Hooks(on_progress, should_cancel),
            source=source,
            route_s=time.perf_counter() - started,
        )

    def remix(
        self,
        path: Path,
        *,
        prompt: str | None = None,
        user: str = "local",
        out_dir: Path | None = None,
        steps: int | None = None,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        on_preview: PreviewFn | None = None,
        pinned: Sequence[PinnedStyle] | None = None,
    ) -> GenerationResult:
        """Re-render the grid an image came from: the image at its recipe's index has
        identical pixels on the same engine weights.

        With `prompt`, the new prompt renders at the recipe's seeds (unless it sets --seed),
        and at the recipe's size and steps unless it changes --ar, --q or --draft.
        """
        started = time.perf_counter()
        source = self._source(path, "remix")
        recipe = source.recipe
        if recipe is None:
            raise NotAnOutput(f"{source.path.name} has no imagineer recipe to re-render")
        if prompt is None:
            self.check_prompt(recipe.prompt, user)
            request = planning.request_of(recipe)
        else:
            request = self._request_for(source, prompt, user, "remix")
        route = self.route(Capability.TEXT_TO_IMAGE, model=recipe.engine, allow_fallback=True)
        item = planning.input_from_recipe(recipe)
        if request is not None:  # the recipe's --sref files must still be what they were
            expected = planning.style_digests(recipe) if prompt is None else ()
            resolver = self.style_resolver(user, pinned)
            styles = load_styles(request, expected=expected, resolver=resolver)
            planning.check_styles(request, route.engine.info, styles)
            item = dataclasses.replace(item, style_refs=styles)
        if request is not None and prompt is not None:
            item = _remix_input(request, recipe, item, route.engine.info)
        if steps is not None:
            planning.check_steps(steps)
            item = dataclasses.replace(item, steps=steps)
        text = recipe.prompt if prompt is None or request is None else format_request(request)
        given = request.params.seed if request is not None and prompt is not None else None
        first, inputs = _grid_of(recipe, item, given)
        warnings = _model_warnings(route, recipe)
        grid = planning.PlannedGrid(request, text, first, False, inputs, warnings)
        return self.renderer.produce(
            "remix",
            [Batch(route, grid)],
            out_dir=out_dir,
            user=user,
            hooks=Hooks(on_progress, should_cancel, on_preview),
            source=source,
            route_s=time.perf_counter() - started,
        )

    def verify(self, path: Path, *, trust_anchors: bytes | Path | None = None) -> Verdict:
        """What the marks of a file (manifest, watermark, labels, recipe) say about it."""
        from imagineer.provenance.verify import verify

        return verify(Path(path), trust_anchors=trust_anchors)

    # --- video -------------------------------------------------------------------------------

    @property
    def video(self) -> VideoMaker:
        """Clips from text or an image, extend and reels (see imagineer.service.video)."""
        from imagineer.service.video import VideoMaker

        return VideoMaker(self)

    # --- models ------------------------------------------------------------------------------

    def models(self) -> builtins.list[ModelSummary]:
        """Every registered model, without loading any."""
        return [self.model(spec.name, load=False) for spec in self.runtime.registry.specs()]

    def model(self, name: str, *, load: bool = False) -> ModelSummary:
        """One model; with load=True (and the model ready) also what only loading tells."""
        registry = self.runtime.registry
        spec = registry.spec(name)
        why_not = spec.available()
        summary = ModelSummary(
            name=spec.name,
            family=spec.family,
            capabilities=tuple(sorted(c.value for c in spec.capabilities)),
            why_not=why_not,
            default=spec.name == self.runtime.settings.default_model,
            description=spec.description,
        )
        if not load or why_not is not None:
            return summary
        info = registry.get(name).info
        side = math.isqrt(info.base_area)
        return dataclasses.replace(
            summary,
            model_id=info.model_id,
            model_hash=info.model_hash,
            base_size=f"{side}x{side}",
            size_multiple=info.size_multiple,
            default_steps=info.default_steps,
            default_guidance=info.default_guidance,
            licence=info.licence,
            notes=info.notes,
        )

    def add_model(
        self,
        source: str,
        options: AddOptions | None = None,
        *,
        replace: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> ModelEntry:
        """Register a diffusers folder, a single-file checkpoint, a LoRA or `hf:ORG/NAME` from
        the Hugging Face cache, offline; its files are hashed now (`progress`: bytes done, all)."""
        from imagineer.models import AddOptions, entry_for

        entry = entry_for(source, options or AddOptions(), progress)
        self.runtime.models.catalog.add(entry, replace_existing=replace)
        self.runtime.reload_models()
        return entry

    def remove_model(self, name: str) -> ModelEntry:
        """Forget a registered model or LoRA; its files are left where they are."""
        entry = self.runtime.models.catalog.remove(name)
        self.runtime.reload_models()
        return entry

    def registered(self, name: str | None = None) -> builtins.list[ModelEntry]:
        """Registry entries (models and LoRAs) as stored, or the one called `name`."""
        catalog = self.runtime.models.catalog
        return [catalog.get(name)] if name is not None else catalog.entries()

    # --- jobs --------------------------------------------------------------------------------

    def submit(
        self,
        request: JobRequest,
        *,
        user: str = "local",
        priority: int = 0,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
        sources: StyleSources = LOCAL_FILES,
    ) -> Job:
        """Queue a request; its prompt is checked (syntax, safety) now, not when it runs.

        Jobs that can share an engine batch get the same batch key; with webhook_url, a
        signed event is posted there when the job ends. Its --sref images are resolved from
        `sources` and pinned by path and hash now: the worker reads only those.
        """
        request = with_absolute_paths(request)
        if isinstance(request, AnimateJob | ExtendJob | ReelJob):
            from imagineer.service.video_jobs import check_video_job

            check_video_job(self.video, request, user)
        elif not isinstance(request, UpscaleJob) and request.prompt is not None:
            for parsed in parse_all(request.prompt):
                planning.check_supported(parsed)
            self.check_prompt(request.prompt, user)
        request = pin_styles(request, self.style_resolver(user, sources=sources))
        return self.runtime.store.submit(
            request.kind,
            to_payload(request),
            user_id=user,
            priority=priority,
            batch_key=batching.batch_key(request, self.runtime.settings.default_model),
            idempotency_key=idempotency_key,
            webhook_url=webhook_url,
        )

    def perform(
        self,
        request: ImageJobRequest,
        *,
        user: str = "local",
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        on_preview: PreviewFn | None = None,
    ) -> GenerationResult:
        """Run a typed request now, in this process (upscales make no previews)."""
        out = None if request.out_dir is None else Path(request.out_dir)
        if isinstance(request, ImagineJob):
            return self.imagine(
                request.prompt,
                user=user,
                out_dir=out,
                steps=request.steps,
                on_progress=on_progress,
                should_cancel=should_cancel,
                on_preview=on_preview,
                pinned=request.sref,
            )
        if isinstance(request, VaryJob):
            return self.vary(
                Path(request.path),
                strength=request.strength,
                prompt=request.prompt,
                user=user,
                out_dir=out,
                steps=request.steps,
                on_progress=on_progress,
                should_cancel=should_cancel,
                on_preview=on_preview,
                pinned=request.sref,
            )
        if isinstance(request, UpscaleJob):
            return self.upscale(
                Path(request.path),
                factor=request.factor,
                user=user,
                out_dir=out,
                on_progress=on_progress,
                should_cancel=should_cancel,
            )
        return self.remix(
            Path(request.path),
            prompt=request.prompt,
            user=user,
            out_dir=out,
            steps=request.steps,
            on_progress=on_progress,
            should_cancel=should_cancel,
            on_preview=on_preview,
            pinned=request.sref,
        )

    def run_job(self, job: Job, ctx: JobContext) -> dict[str, object]:
        """The worker's handler: run the job's typed request, return the result as JSON.

        Each attempt writes into its own folder, <out_dir>/<job id>/<attempt>. While it runs,
        a preview of the image in progress is kept at `preview_path(job)`."""
        request = self._attempt_request(job)
        previews = PreviewWriter(self.preview_path(job))
        try:
            if isinstance(request, AnimateJob | ExtendJob | ReelJob):
                return self._run_video(request, job.user_id, ctx, previews)
            result = self.perform(
                request,
                user=job.user_id,
                on_progress=ctx.progress,
                should_cancel=ctx.cancelled,
                on_preview=previews,
            )
        finally:
            previews.remove()
        return result.to_dict()

    def _run_video(
        self,
        request: VideoJobRequest,
        user: str,
        ctx: JobContext,
        previews: PreviewFn,
    ) -> dict[str, object]:
        """A video job, made as `imagineer animate | extend | reel` makes it."""
        from imagineer.service.video import VideoOptions
        from imagineer.service.video_jobs import perform_video

        options = VideoOptions(
            formats=request.formats,
            out_dir=None if request.out_dir is None else Path(request.out_dir),
            user=user,
            steps=request.steps,
            on_progress=ctx.progress,
            should_cancel=ctx.cancelled,
            on_preview=previews,
        )
        return perform_video(self.video, request, options).to_dict()

    def run_jobs(
        self, jobs: Sequence[Job], ctxs: Sequence[JobContext]
    ) -> builtins.list[dict[str, object] | Exception]:
        """The worker's batch handler: imagine jobs with one batch key, their grids sharing
        engine calls; item i is job i's result as JSON, or what failed it alone."""
        works: builtins.list[Work | Exception] = []
        previews = [PreviewWriter(self.preview_path(job)) for job in jobs]
        for job, ctx, preview in zip(jobs, ctxs, previews, strict=True):
            try:
                works.append(self._imagine_work(job, ctx, preview))
            except Exception as exc:
                works.append(exc)
        try:
            produced = iter(self.renderer.produce_many([w for w in works if isinstance(w, Work)]))
        finally:
            for preview in previews:
                preview.remove()
        answers: builtins.list[dict[str, object] | Exception] = []
        for work in works:
            outcome = work if isinstance(work, Exception) else next(produced)
            answers.append(outcome if isinstance(outcome, Exception) else outcome.to_dict())
        return answers

    def discard_result(self, job: Job, _result: dict[str, object] | None = None) -> None:
        """Delete the files of an attempt whose result was dropped (it was taken over)."""
        root = batching.job_root(job.payload, job.id, self.runtime.settings.output_dir)
        batching.remove_attempt(root, job.attempts)

    def abandon_job(self, job: Job, _result: dict[str, object] | None = None) -> None:
        """Delete what a job's attempts left when it ended without a result."""
        if job.result is None:
            root = batching.job_root(job.payload, job.id, self.runtime.settings.output_dir)
            batching.remove_attempt(root)

    def _attempt_request(self, job: Job) -> JobRequest:
        """The job's request, writing into the folder of this attempt (earlier ones cleared)."""
        request = from_payload(job.kind, job.payload)
        root = batching.job_root(job.payload, job.id, self.runtime.settings.output_dir)
        batching.clear_other_attempts(root, job.attempts)
        folder = batching.attempt_folder(root, job.attempts)
        request = dataclasses.replace(request, out_dir=str(folder))
        if isinstance(request, ImagineJob | VaryJob | RemixJob) and request.sref is None:
            request = dataclasses.replace(request, sref=())  # a worker reads only pinned files
        return request

    def _imagine_work(self, job: Job, ctx: JobContext, preview: PreviewFn) -> Work:
        started = time.perf_counter()
        request = self._attempt_request(job)
        if not isinstance(request, ImagineJob):
            raise ValueError(f"a {job.kind} job cannot run in a batch: only imagine jobs do")
        batches = self.plan_imagine(
            request.prompt, user=job.user_id, steps=request.steps, pinned=request.sref
        )
        hooks = Hooks(ctx.progress, ctx.cancelled, preview)
        return Work(
            "imagine",
            batches,
            Path(str(request.out_dir)),
            job.user_id,
            hooks,
            route_s=time.perf_counter() - started,
        )

    def preview_path(self, job: Job) -> Path:
        """Where the latest preview of a running job is (while there is one)."""
        return preview_file(job.payload, job.id, self.runtime.settings.output_dir)

    def jobs(
        self, *, user: str | None = None, state: JobState | str | None = None, limit: int = 50
    ) -> builtins.list[Job]:
        """Jobs newest first (every user's when user is None)."""
        return self.runtime.store.list(user_id=user, state=state, limit=limit)

    def job(self, job_id: str, *, user: str | None = None) -> Job:
        return self.runtime.store.get(job_id, user_id=user)

    def cancel(self, job_id: str, *, user: str | None = None) -> Job:
        return self.runtime.store.cancel(job_id, user_id=user)

    def worker(
        self,
        worker_id: str,
        *,
        poll_interval: float = 0.2,
        heartbeat_interval: float = 1.0,
        stale_after_s: float | None = None,
        max_batch: int = 4,
        batch_window_s: float = 0.05,
    ) -> Worker:
        """A worker that runs queued jobs through this service, up to max_batch compatible
        imagine jobs at once (waiting up to batch_window_s for a batch to fill)."""
        from imagineer.jobs import Worker

        return Worker(
            self.runtime.store,
            self.run_job,
            worker_id=worker_id,
            poll_interval=poll_interval,
            heartbeat_interval=heartbeat_interval,
            stale_after_s=stale_after_s,
            batch_handler=self.run_jobs,
            max_batch=max_batch,
            batch_window_s=batch_window_s,
            on_discard=self.discard_result,
            on_abandoned=self.abandon_job,
        )

    # --- shared steps ------------------------------------------------------------------------

    def check_prompt(self, prompt_text: str, user: str) -> None:
        """Raise SafetyRefusal when the gate refuses the prompt (the refusal is recorded)."""
        decision = self.runtime.gate.check(prompt_text, user)
        if not decision.allowed:
            raise SafetyRefusal(decision)

    def style_resolver(
        self,
        user: str,
        pinned: Sequence[PinnedStyle] | None = None,
        *,
        sources: StyleSources = LOCAL_FILES,
    ) -> StyleResolver:
        """How `user`'s --sref references are read: a queued job's pinned files only, or what
        `sources` allow, with job:ID naming the user's own jobs."""
        pins = None if pinned is None else {pin.ref: pin for pin in pinned}
        return StyleResolver(sources, lambda job_id: self._users_job(job_id, user), pins)

    def _users_job(self, job_id: str, user: str) -> Job:
        return self.runtime.store.get(job_id, user_id=user)

    def route(
        self, capability: Capability, *, model: str | None = None, allow_fallback: bool = False
    ) -> Route:
        """The engine for a capability (loading it on first use)."""
        return self.runtime.router.route(capability, model=model, allow_fallback=allow_fallback)

    def _source(self, path: Path, verb: str) -> Source:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        recipe = read_recipe(path)
        if recipe is not None and recipe.extras.get("grid"):
            raise NotAnOutput(
                f"{path.name} is a 2x2 grid: {verb} one of its four images "
                "(the files named like it, ending _0 to _3)"
            )
        return Source(path, recipe, content_hash(path.read_bytes()))

    def _request_for(self, source: Source, prompt: str | None, user: str, verb: str) -> Request:
        """The request to vary or remix with: `prompt` when given, else the recipe's."""
        if prompt is not None:
            self.check_prompt(prompt, user)
            return parse(prompt)
        if source.recipe is None:
            raise NotAnOutput(
                f"{source.path.name} has no imagineer recipe: give a prompt to {verb} it"
            )
        self.check_prompt(source.recipe.prompt, user)
        request = planning.request_of(source.recipe)
        return request if request is not None else parse(source.recipe.prompt)


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image.seek(0)
        return image_to_array(image)  # (H, W, 3) uint8


def _remix_input(
    request: Request, recipe: Recipe, old: GenerationInput, info: EngineInfo
) -> GenerationInput:
    """The new prompt at the recipe's seed, size and steps, unless it changes them."""
    new = planning.input_for(request, info, seed=recipe.seed, styles=old.style_refs)
    before = planning.request_of(recipe)
    if before is None:
        return new
    if before.params.aspect == request.params.aspect:
        new = dataclasses.replace(new, width=old.width, height=old.height)
    effort = (request.params.quality, request.params.draft)
    if (before.params.quality, before.params.draft) == effort:
        new = dataclasses.replace(new, steps=old.steps)
    return new


def _grid_of(
    recipe: Recipe, item: GenerationInput, first_seed: int | None
) -> tuple[int, tuple[GenerationInput, ...]]:
    """The whole grid the recipe's image ran in (from `first_seed` when given): its first
    seed and every input. Re-running the grid, not the image alone, keeps pixels identical.
    """
    size = max(1, int(recipe.extras.get("batch", 1)))
    first = item.seed - recipe.index if first_seed is None else first_seed
    if first < 0:  # an index the seeds cannot have come from: render the image alone
        size, first = 1, item.seed
    return first, tuple(dataclasses.replace(item, seed=first + k) for k in range(size))


def _model_warnings(route: Route, recipe: Recipe) -> tuple[str, ...]:
    """Why a re-render may not match its recipe's pixels."""
    warnings = []
    if route.fell_back:
        warnings.append(route.reason)
    info = route.engine.info
    if recipe.model_hash and info.model_hash != recipe.model_hash:
        warnings.append(
            f"the model differs from the recipe's (hash {info.model_hash[:10]} vs "
            f"{recipe.model_hash[:10]}): the pixels will not match the original"
        )
    return tuple(warnings)
