"""The `imagineer` command line: imagine, vary, upscale, remix, animate, extend, reel, jobs,
models, verify, train.

Every command calls the service layer (imagineer.service); this file only reads arguments,
shows progress and prints results. Exit codes: 0 done, 1 failed, 2 bad prompt or usage,
3 refused by the safety policy, 130 cancelled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from imagineer.config import Settings
from imagineer.server.keys_cli import app as keys_app
from imagineer.service.jobs import ImageJobRequest, ImagineJob, RemixJob, UpscaleJob, VaryJob
from imagineer.train.cli import app as train_app

if TYPE_CHECKING:
    from imagineer.jobs import Job
    from imagineer.runtime import Runtime
    from imagineer.service import GenerationResult, Service

EXIT_FAILED = 1
EXIT_PROMPT = 2
EXIT_REFUSED = 3
EXIT_CANCELLED = 130

app = typer.Typer(
    help="imagineer: images from Midjourney-style prompts, every output labelled as AI-made.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
jobs_app = typer.Typer(help="The job queue: list, show, cancel, and run a worker.")
models_app = typer.Typer(help="The installed models: list, show, add your checkpoints, remove.")
app.add_typer(jobs_app, name="jobs")
app.add_typer(models_app, name="models")
app.add_typer(train_app, name="train")
app.add_typer(keys_app, name="keys")


def _default_runtime(settings: Settings) -> Runtime:
    from imagineer.runtime import Runtime

    return Runtime.from_settings(settings)


@dataclass(frozen=True)
class CliHooks:
    """What a caller (a test, an embedding app) may swap: how the runtime is built."""

    make_runtime: Callable[[Settings], Runtime] = field(default=_default_runtime)


@dataclass(frozen=True)
class _State:
    settings: Settings
    hooks: CliHooks


@app.callback()
def _options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Jobs database, keys and models.")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="SQLAlchemy URL of the job store (default: SQLite)."),
    ] = None,
) -> None:
    """Settings come from IMAGINEER_* environment variables, then these options."""
    hooks = ctx.obj if isinstance(ctx.obj, CliHooks) else CliHooks()
    try:
        settings = Settings.from_env(data_dir=data_dir, device=device, database_url=database_url)
    except ValueError as err:
        _fail(str(err), EXIT_PROMPT)
    ctx.obj = _State(settings, hooks)


def main() -> None:
    """The console entry point."""
    app()


# --- generation -----------------------------------------------------------------------------

OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Folder for the images (default: ./outputs of the runner)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable result.")]
QueueOpt = Annotated[
    bool, typer.Option("--queue", help="Queue a job for `imagineer jobs work` instead.")
]
StepsOpt = Annotated[
    int | None, typer.Option("--steps", min=1, help="Sampling steps (overrides --q/--draft).")
]
FileArg = Annotated[Path, typer.Argument(help="An image imagineer made (or your own).")]


@app.command()
def imagine(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help='The prompt, e.g. "a red fox --ar 16:9".')],
    out: OutOpt = None,
    as_json: JsonOpt = False,
    queue: QueueOpt = False,
    steps: StepsOpt = None,
) -> None:
    """Make a 2x2 grid for a prompt, or a 5 s clip with --video (see docs/prompt-language.md)."""
    if not queue and _wants_video(prompt):
        _run_video(ctx, lambda s, o: s.video.imagine_video(prompt, options=o), out, steps, as_json)
        return
    _run(ctx, ImagineJob(prompt, out_dir=_text(out), steps=steps), queue=queue, as_json=as_json)


# --- video ----------------------------------------------------------------------------------

MotionOpt = Annotated[
    str, typer.Option("--motion", help="low (a slow drift) or high (about three times faster).")
]
SecondsOpt = Annotated[float, typer.Option("--seconds", min=0.5, help="Length of the clip.")]
FormatOpt = Annotated[
    list[str] | None,
    typer.Option("--format", "-f", help="mp4 (default), webm or gif; repeat for several."),
]


@app.command()
def animate(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="An image file, or a job id (its first image).")],
    motion: MotionOpt = "low",
    loop: Annotated[bool, typer.Option("--loop", help="End where it starts, seamlessly.")] = False,
    end: Annotated[Path | None, typer.Option("--end", help="An image to end on.")] = None,
    camera: Annotated[
        str | None,
        typer.Option(
            "--camera",
            help="static, pan_left/right, tilt_up/down, dolly_in/out, "
            "orbit_left/right (default: a push in).",
        ),
    ] = None,
    seconds: SecondsOpt = 5.0,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="What the image shows (default: its recipe's).")
    ] = None,
    index: Annotated[int, typer.Option("--index", min=0, help="Which image of a job.")] = 0,
    fmt: FormatOpt = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    steps: StepsOpt = None,
) -> None:
    """Animate an image into a clip; its first frame keeps the image (docs/video.md)."""

    def make(service: Service, options: Any) -> Any:
        path = service.video.source_image(source, index=index)
        return service.video.animate(
            path, prompt=prompt, motion=motion, loop=loop, end=end, camera=camera,
            seconds=seconds, options=options,
        )  # fmt: skip

    _run_video(ctx, make, out, steps, as_json, fmt)


@app.command()
def extend(
    ctx: typer.Context,
    video: Annotated[Path, typer.Argument(help="A clip imagineer made (MP4, WebM or GIF).")],
    seconds: Annotated[float, typer.Option("--seconds", min=0.5, help="How much longer.")] = 4.0,
    motion: Annotated[
        str | None, typer.Option("--motion", help="low or high (default: the clip's).")
    ] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="A new prompt (default: the clip's).")
    ] = None,
    fmt: FormatOpt = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    steps: StepsOpt = None,
) -> None:
    """Make a clip longer: the new part continues from its last frame."""

    def make(service: Service, options: Any) -> Any:
        return service.video.extend(
            video, seconds=seconds, motion=motion, prompt=prompt, options=options
        )

    _run_video(ctx, make, out, steps, as_json, fmt)


@app.command()
def reel(
    ctx: typer.Context,
    prompt: Annotated[
        str, typer.Argument(help='e.g. "a futuristic city at sunset with flying cars".')
    ],
    seconds: Annotated[
        float, typer.Option("--seconds", min=1.0, help="Length of the reel.")
    ] = 10.0,
    fmt: FormatOpt = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    steps: StepsOpt = None,
) -> None:
    """A finished reel from one prompt: storyboard, shots, cuts and crossfades, 24 fps."""
    _run_video(
        ctx, lambda s, o: s.video.reel(prompt, seconds=seconds, options=o), out, steps, as_json, fmt
    )


@train_app.command("video-data")
def train_video_data(
    out: Annotated[Path, typer.Option("--out", help="Folder for the clips.")] = Path("data/video"),
    count: Annotated[int, typer.Option("--count", min=1, help="How many clips.")] = 1000,
    size: Annotated[int, typer.Option("--size", min=16, help="Side in pixels (even).")] = 64,
    fps: Annotated[int, typer.Option("--fps", min=1, max=60)] = 12,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
) -> None:
    """Render clips of the world in motion (camera moves, drifting clouds, moving things, the
    light changing) with a JSON line each: training data for a video model."""
    from imagineer.world.motion import write_clips

    if size % 2:
        _fail(f"--size {size}: MP4 needs an even side", EXIT_PROMPT)
    index = write_clips(out, count, seed=seed, size=size, fps=fps)
    typer.echo(f"{count} clips and their captions: {index}")


def _wants_video(prompt: str) -> bool:
    """Whether the prompt asks for a clip (--video); bad prompts go the usual way to be reported."""
    from imagineer.prompts import PromptError, parse_all

    try:
        return any(request.params.video for request in parse_all(prompt))
    except PromptError:
        return False


def _run_video(
    ctx: typer.Context,
    make: Callable[[Service, Any], Any],
    out: Path | None,
    steps: int | None,
    as_json: bool,
    formats: list[str] | None = None,
) -> None:
    """Run a video call here with a progress bar; print the files it wrote."""
    from imagineer.service.video import VideoOptions

    names = tuple(n.strip().lower() for f in formats or ["mp4"] for n in f.split(",") if n.strip())
    with _service(ctx) as service, _progress(enabled=not as_json) as on_progress:
        options = VideoOptions(formats=names, out_dir=out, steps=steps, on_progress=on_progress)
        result = make(service, options)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", fg="yellow", err=True)
    board = result.storyboard
    if board is not None:
        for shot in board.shots:
            typer.echo(
                f"shot {shot.index + 1} {shot.role:<12} {shot.frames / board.fps:4.1f} s  "
                f"{shot.camera.move:<11} {shot.transition:<9} {shot.line}"
            )
    for video in result.videos:
        first = video.recipe
        typer.echo(
            f"{video.format}: {video.path} ({video.frame_count} frames, {video.fps} fps, "
            f"{first.width}x{first.height}{', signed' if video.signed else ''})"
        )
    typer.echo(f"poster: {result.poster.path}")
    typer.echo(f"contact sheet: {result.contact_sheet.path}")
    t = result.timings
    typer.echo(
        f"{result.engine} · {t.total_s:.1f} s "
        f"(generate {t.generate_s:.1f} s, save {t.save_s:.1f} s)"
    )


@app.command()
def vary(
    ctx: typer.Context,
    file: FileArg,
    strong: Annotated[bool, typer.Option("--strong", help="Vary more (default: subtle).")] = False,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="A new prompt (default: the image's).")
    ] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    queue: QueueOpt = False,
    steps: StepsOpt = None,
) -> None:
    """Make a 2x2 grid of variations of an image."""
    request = VaryJob(
        str(file),
        strength="strong" if strong else "subtle",
        prompt=prompt,
        out_dir=_text(out),
        steps=steps,
    )
    _run(ctx, request, queue=queue, as_json=as_json)


@app.command()
def upscale(
    ctx: typer.Context,
    file: FileArg,
    factor: Annotated[int, typer.Option("--factor", help="2 or 4.")] = 2,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    queue: QueueOpt = False,
) -> None:
    """Upscale an image 2x or 4x."""
    _run(
        ctx, UpscaleJob(str(file), factor=factor, out_dir=_text(out)), queue=queue, as_json=as_json
    )


@app.command()
def remix(
    ctx: typer.Context,
    file: FileArg,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="A new prompt at the same seed.")
    ] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
    queue: QueueOpt = False,
    steps: StepsOpt = None,
) -> None:
    """Re-render an image from its recipe (identical pixels on the same model)."""
    request = RemixJob(str(file), prompt=prompt, out_dir=_text(out), steps=steps)
    _run(ctx, request, queue=queue, as_json=as_json)


@app.command()
def verify(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The image or clip to check.")],
    as_json: JsonOpt = False,
    trust: Annotated[
        Path | None, typer.Option("--trust", help="A PEM root CA to trust (e.g. ca.pem).")
    ] = None,
) -> None:
    """Read a file's C2PA manifest, watermark, IPTC labels and recipe; exit 1 if tampered."""
    with _service(ctx) as service:
        verdict = service.verify(file, trust_anchors=trust)
    if as_json:
        typer.echo(json.dumps(verdict.to_dict(), indent=2, default=str))
    else:
        typer.echo(verdict.summary)
        for line in verdict.details():
            typer.echo(f"  {line}")
    if verdict.finding in ("manifest_invalid", "edited_after_signing"):
        raise typer.Exit(EXIT_FAILED)


def _run(ctx: typer.Context, request: ImageJobRequest, *, queue: bool, as_json: bool) -> None:
    """Queue the request, or run it here with a progress bar; print the outcome."""
    with _service(ctx) as service:
        if queue:
            _print_job(service.submit(request), as_json)
            return
        with _progress(enabled=not as_json) as on_progress:
            result = service.perform(request, on_progress=on_progress)
    _print_result(result, as_json)


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Run jobs here, or leave them to `imagineer jobs work` processes.",
        ),
    ] = True,
) -> None:
    """Serve the HTTP API: REST jobs, SSE progress, OpenAI-compatible images (docs/api.md)."""
    import uvicorn

    from imagineer.server.app import create_app
    from imagineer.server.options import ServerOptions

    state: _State = ctx.obj
    try:
        options = ServerOptions(host=host, port=port, worker=worker)
    except ValueError as err:
        _fail(str(err), EXIT_PROMPT)
    with state.hooks.make_runtime(state.settings) as runtime:
        server_app = create_app(state.settings, runtime=runtime, options=options)
        uvicorn.run(server_app, host=host, port=port)


# --- jobs -----------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    state: Annotated[
        str | None, typer.Option(help="queued, running, done, failed or cancelled.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Only this user's jobs.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Jobs, newest first."""
    with _service(ctx) as service:
        jobs = service.jobs(user=user, state=state, limit=limit)
    if as_json:
        typer.echo(json.dumps([_job_dict(job) for job in jobs], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "kind", "state", "progress", "created (UTC)", "error")
    for job in jobs:
        table.add_row(
            job.id,
            job.kind,
            job.state.value,
            f"{job.progress_step}/{job.progress_total}" if job.progress_total else "",
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            (job.error or "")[:60],
        )
    Console().print(table)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: str, as_json: JsonOpt = False) -> None:
    """One job: its request, state and result."""
    with _service(ctx) as service:
        job = service.job(job_id)
    _print_job(job, as_json, full=True)


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: str) -> None:
    """Cancel a queued job, or ask a running one to stop at its next step."""
    with _service(ctx) as service:
        job = service.cancel(job_id)
    wording = "cancel requested" if job.cancel_requested else job.state.value
    typer.echo(f"{job.id}: {wording}")


@jobs_app.command("work")
def jobs_work(
    ctx: typer.Context,
    worker_id: Annotated[
        str | None, typer.Option(help="Default: host name, process id and a random suffix.")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help="This worker's device: cpu, cuda or cuda:N (one per GPU)."),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch", min=1, help="Compatible jobs per engine batch (default: 4 on GPU, 1 on CPU)."
        ),
    ] = None,
    batch_window_ms: Annotated[
        float,
        typer.Option("--batch-window-ms", min=0, help="How long a batch waits to fill."),
    ] = 50.0,
    grace: Annotated[
        float,
        typer.Option("--grace", min=0, help="On SIGTERM/Ctrl-C: seconds to finish, then requeue."),
    ] = 30.0,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact-batches",
            help="CPU numerics independent of batch size: a batched job's pixels are bit for "
            "bit its pixels alone (about half the speed).",
        ),
    ] = False,
    webhooks: Annotated[
        bool, typer.Option("--webhooks/--no-webhooks", help="Also deliver webhook events.")
    ] = True,
    until_empty: Annotated[
        bool, typer.Option("--until-empty", help="Exit once the queue is empty.")
    ] = False,
) -> None:
    """Run a worker: take queued jobs and run them until SIGTERM or Ctrl-C (or the queue is
    empty); jobs still running after --grace seconds go back to the queue."""
    from imagineer.server.worker import WorkerOptions, default_batch_jobs, serve_worker

    if exact:
        from imagineer.service.batching import batch_invariant_numerics

        batch_invariant_numerics()
    state: _State = ctx.obj
    if device is not None:
        ctx.obj = _State(replace(state.settings, device=device), state.hooks)
    options = WorkerOptions(
        worker_id=worker_id,
        batch_jobs=batch,
        batch_window_s=batch_window_ms / 1000,
        grace_s=grace,
        webhooks=webhooks,
    )
    with _service(ctx) as service:
        if until_empty:
            size = batch or default_batch_jobs(service.runtime.settings.device)
            worker = service.worker(options.name(), max_batch=size, batch_window_s=0)
            while ended := worker.run_batch_once():
                for job in ended:
                    _print_job(job, as_json=False)
            return

        def started(name: str) -> None:
            typer.echo(f"worker {name} is running; Ctrl-C or SIGTERM stops it (grace {grace:g} s)")

        requeued = serve_worker(service, options, on_start=started)
        for job_id in requeued:
            typer.echo(f"requeued {job_id}: it was still running at the end of the grace period")


# --- models ---------------------------------------------------------------------------------


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Installed models, what they can do and whether they are ready."""
    with _service(ctx) as service:
        models = service.models()
        loras = [e for e in service.registered() if not e.is_model]
    if as_json:
        listing = [m.to_dict() for m in models]
        listing += [{"name": e.name, "family": _plug_in(e), "path": e.path} for e in loras]
        typer.echo(json.dumps(listing, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "family", "can do", "ready", "description")
    for m in models:
        name = f"{m.name} (default)" if m.default else m.name
        ready = "yes" if m.available else f"no: {m.why_not}"
        table.add_row(name, m.family, ", ".join(m.capabilities), ready, m.description)
    Console().print(table)
    for kind in ("lora", "ip-adapter"):
        named = [f"{e.name} ({e.path})" for e in loras if _plug_in(e) == kind]
        if named:
            typer.echo(f"{'LoRAs' if kind == 'lora' else 'IP-Adapters'}: " + ", ".join(named))


@models_app.command("show")
def models_show(ctx: typer.Context, name: str, as_json: JsonOpt = False) -> None:
    """One model in detail (loads it to read its size, steps and weights hash)."""
    with _service(ctx) as service:
        registered = {e.name: e for e in service.registered()}
        entry = registered.get(name)
        model = None if entry is not None and not entry.is_model else service.model(name, load=True)
    data: dict[str, Any] = model.to_dict() if model is not None else {}
    if entry is not None:
        stored = entry.to_dict()
        stored.pop("files")
        data["registry"] = stored
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    registry = data.pop("registry", {})
    for key, value in {**data, **registry}.items():
        if key == "licence_text" and value:
            value = f"{len(value)} characters (see --json)"
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        typer.echo(f"{key}: {shown}")


@models_app.command("add")
def models_add(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="A diffusers folder, a single-file checkpoint or LoRA (.safetensors, .ckpt), "
            "or hf:ORG/NAME for a model already in the Hugging Face cache."
        ),
    ],
    name: Annotated[str | None, typer.Option("--name", help="What --model will call it.")] = None,
    family: Annotated[
        str | None, typer.Option("--family", help="Override the detected family (sd15, sdxl, …).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Single file: a diffusers folder to take configs from."),
    ] = None,
    hf_cache: Annotated[
        Path | None, typer.Option("--hf-cache", help="The Hugging Face cache folder to look in.")
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", min=8, help="Side of the square it renders at.")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Default steps.")] = None,
    guidance: Annotated[
        float | None, typer.Option("--guidance", min=0.0, help="Default guidance.")
    ] = None,
    lora: Annotated[
        list[str] | None,
        typer.Option("--lora", help="A registered LoRA to apply, as NAME or NAME:WEIGHT (repeat)."),
    ] = None,
    ip_adapter: Annotated[
        str | None,
        typer.Option("--ip-adapter", help="A registered IP-Adapter that --sref loads (by name)."),
    ] = None,
    image_encoder: Annotated[
        Path | None,
        typer.Option(
            "--image-encoder",
            help="IP-Adapter: its CLIP image encoder folder (default: image_encoder/ beside it).",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a model of the same name.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register a checkpoint, LoRA or IP-Adapter, offline (nothing is downloaded); its files
    are hashed now."""
    from imagineer.models import AddOptions

    options = AddOptions(
        name=name,
        family=family,
        config=config,
        hf_cache=hf_cache,
        base_side=size,
        steps=steps,
        guidance=guidance,
        loras=tuple(_lora_ref(text) for text in lora or ()),
        ip_adapter=ip_adapter,
        image_encoder=image_encoder,
    )
    if not as_json:
        typer.echo("reading and hashing the model's files (offline)…", err=True)
    with _service(ctx) as service:
        entry = service.add_model(source, options, replace=replace)
    if as_json:
        data = entry.to_dict()
        data.pop("files")
        typer.echo(json.dumps(data, indent=2))
        return
    what = "LoRA" if entry.is_lora else f"{entry.family} model"
    if entry.is_ip_adapter:
        what = f"IP-Adapter (image encoder {entry.image_encoder})"
    typer.echo(f"added {what} {entry.name!r} from {entry.path}")
    typer.echo(f"sha256 {entry.content_hash}")
    if entry.is_ip_adapter:
        typer.echo(f"attach it: imagineer models add MODEL --ip-adapter {entry.name} --replace")
    elif not entry.is_lora:
        typer.echo(f"can do: {', '.join(entry.capabilities)}")
        typer.echo(f'use it: imagineer imagine "your prompt --model {entry.name}"')


@models_app.command("remove")
def models_remove(ctx: typer.Context, name: str) -> None:
    """Forget a registered model or LoRA (its files stay where they are)."""
    with _service(ctx) as service:
        entry = service.remove_model(name)
    typer.echo(f"removed {entry.name!r} (files left in {entry.path})")


def _plug_in(entry: Any) -> str:
    """What a registry entry that is not a model plugs into one as."""
    return "ip-adapter" if entry.is_ip_adapter else "lora"


def _lora_ref(text: str) -> Any:
    from imagineer.models import LoraRef

    name, _, weight = text.partition(":")
    try:
        return LoraRef(name, float(weight) if weight else 1.0)
    except ValueError:
        _fail(f"--lora {text}: write NAME or NAME:WEIGHT, e.g. pixel-art:0.8", EXIT_PROMPT)


# --- output ---------------------------------------------------------------------------------


def _print_result(result: GenerationResult, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", fg="yellow", err=True)
    for reason in result.withheld:
        typer.secho(f"withheld: {reason}", fg="yellow", err=True)
    for path in result.grids:
        typer.echo(f"grid: {path}")
    for image in result.images:
        typer.echo(f"image {image.recipe.index}: {image.path} (seed {image.recipe.seed})")
    t = result.timings
    typer.echo(
        f"{result.engine} · {len(result.images)} image(s) in {t.total_s:.1f} s "
        f"(generate {t.generate_s:.1f} s, save {t.save_s:.1f} s)"
    )


def _job_dict(job: Job, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": job.id,
        "kind": job.kind,
        "state": job.state.value,
        "user": job.user_id,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "progress": [job.progress_step, job.progress_total],
        "attempts": job.attempts,
        "error": job.error,
    }
    if full:
        data.update(payload=job.payload, result=job.result)
    return data


def _print_job(job: Job, as_json: bool, *, full: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(_job_dict(job, full), indent=2))
        return
    line = f"{job.id}: {job.kind} {job.state.value}"
    typer.echo(line + (f" ({job.error})" if job.error else ""))
    if full:
        typer.echo(json.dumps({"payload": job.payload, "result": job.result}, indent=2))


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar with ETA on stderr; yields the on_progress callback."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("loading and planning", total=None)

        def on_progress(step: int, total: int) -> None:
            stage = "generating" if step < total else "saving with watermark, labels, signature"
            bar.update(task, description=stage, completed=step, total=total)

        yield on_progress


# --- errors ---------------------------------------------------------------------------------


@contextmanager
def _service(ctx: typer.Context) -> Iterator[Service]:
    """The service over a fresh runtime; typed errors become messages and exit codes."""
    from imagineer.engines.base import Cancelled, EngineError
    from imagineer.jobs import JobError
    from imagineer.prompts import PromptError
    from imagineer.service import SafetyRefusal, Service

    state: _State = ctx.obj
    try:
        with state.hooks.make_runtime(state.settings) as runtime:
            yield Service(runtime)
    except PromptError as err:
        _fail(str(err), EXIT_PROMPT)
    except SafetyRefusal as err:
        _fail(f"refused ({err.category}): {err.reason}", EXIT_REFUSED)
    except Cancelled as err:
        _fail(str(err), EXIT_CANCELLED)
    except EngineError as err:
        _fail(f"{err}{_train_hint(str(err))}", EXIT_FAILED)
    except (JobError, OSError, ValueError, ImportError) as err:
        _fail(str(err), EXIT_FAILED)


def _train_hint(message: str) -> str:
    """How to get the embedded model's weights, when the registry says they are missing."""
    from imagineer.engines.embedded.engine import weights_dir

    if "embedded" not in message or "imagineer train" not in message:
        return ""
    folder = weights_dir()
    return (
        "\nThe embedded model's weights are not installed. Train them (resumable; hours on a "
        "CPU, minutes on a GPU):\n"
        "  imagineer train data\n"
        f"  imagineer train flow --export {folder}\n"
        f"  imagineer train upscaler --export {folder}"
    )


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)
