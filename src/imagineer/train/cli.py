"""`imagineer train …`: build the world data set, train the embedded models, export weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Train imagineer's embedded models on the procedural world (resumable).")

DataOpt = Annotated[Path, typer.Option(help="Folder of the rendered, captioned, encoded data.")]
RunOpt = Annotated[Path, typer.Option(help="Folder for checkpoints and the training log.")]


@app.command("data")
def data_command(
    out: DataOpt = Path("data/embedded"),
    count: Annotated[int, typer.Option(min=64, help="Scenes to render in all buckets.")] = 60000,
    seed: Annotated[int, typer.Option(help="Seed of the scene sampler.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Render processes.")] = 2,
) -> None:
    """Render world scenes at the base size, caption them and cache their text states."""
    from imagineer.train import data

    data.build(out, data.DataSpec(count=count, seed=seed), workers=workers)


@app.command("flow")
def flow_command(
    data_dir: DataOpt = Path("data/embedded"),
    run: RunOpt = Path("runs/embedded"),
    minutes: Annotated[float, typer.Option(min=0.1, help="Training time for this run.")] = 60.0,
    batch: Annotated[int, typer.Option(min=1)] = 64,
    lr: Annotated[float, typer.Option(min=0.0)] = 3e-4,
    object_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Extra loss weight on object pixels (needs `imagineer train masks`); "
            "0 trains every pixel alike.",
        ),
    ] = 0.0,
    t_shift: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Shift training times towards pure noise, where layout (position, count) "
            "is decided; 1 = plain logit-normal.",
        ),
    ] = 1.0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    export: Annotated[
        Path | None, typer.Option(help="Write EMA weights here at every checkpoint.")
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(help="Start from these exported weights when the run has no checkpoint."),
    ] = None,
) -> None:
    """Train (or resume) the base text-to-image model with rectified flow."""
    from imagineer.train.export import export_unet
    from imagineer.train.flow import FlowTrainConfig, Trainer

    cfg = FlowTrainConfig(
        data=data_dir,
        run=run,
        minutes=minutes,
        batch=batch,
        lr=lr,
        object_weight=object_weight,
        t_shift=t_shift,
        threads=threads,
        device=device,
        init=init,
    )
    trainer = Trainer(cfg, log=typer.echo)

    def on_checkpoint(t: Trainer) -> None:
        if export is not None:
            export_unet(t, export)

    trainer.train(on_checkpoint)


@app.command("upscaler")
def upscaler_command(
    data_dir: DataOpt = Path("data/upscaler"),
    run: RunOpt = Path("runs/upscaler"),
    count: Annotated[int, typer.Option(min=16, help="Scenes to render at 256 px.")] = 6000,
    minutes: Annotated[float, typer.Option(min=0.1, help="Training time for this run.")] = 15.0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    export: Annotated[Path | None, typer.Option(help="Write the weights here.")] = None,
    init: Annotated[
        Path | None,
        typer.Option(help="Start from these exported weights when the run has no checkpoint."),
    ] = None,
) -> None:
    """Render 256 px pyramids (once) and train the 2x upscaler on them."""
    import torch

    from imagineer.train.upscale import (
        UpscaleTrainConfig,
        build_pyramids,
        export_upscaler,
        train_upscaler,
    )

    if threads:
        torch.set_num_threads(threads)
    if not (data_dir / "level32.npy").exists():
        typer.echo(f"rendering {count} scenes at 256 px into {data_dir}")
        build_pyramids(data_dir, count)
    cfg = UpscaleTrainConfig(data=data_dir, run=run, minutes=minutes, init=init)
    model = train_upscaler(cfg, typer.echo)
    if export is not None:
        typer.echo(f"wrote {export_upscaler(model, export)}")


@app.command("rerender")
def rerender_command(
    data_dir: DataOpt = Path("data/embedded"),
    workers: Annotated[int, typer.Option(min=1, help="Render processes.")] = 2,
) -> None:
    """Redraw a data folder's images from its stored scenes (after the renderer changed)."""
    from imagineer.train import data

    data.rerender(data_dir, workers=workers, log=typer.echo)


@app.command("masks")
def masks_command(
    data_dir: DataOpt = Path("data/embedded"),
    workers: Annotated[int, typer.Option(min=1, help="Render processes.")] = 2,
) -> None:
    """Mark the pixels each scene's objects cover (redrawn without them), for --object-weight."""
    from imagineer.train import data

    data.object_masks(data_dir, workers=workers, log=typer.echo)


@app.command("evaluator")
def evaluator_command(
    out: Annotated[Path, typer.Option(help="Weights file to write.")] = Path(
        "src/imagineer/weights/evaluator.safetensors"
    ),
    data_dir: Annotated[Path, typer.Option(help="Cache of rendered sets.")] = Path(
        "data/evaluator"
    ),
    count: Annotated[int, typer.Option(min=1000, help="Training renders.")] = 80000,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
) -> None:
    """Train the world evaluator (the adherence judge) on fresh renders and ship its weights."""
    from imagineer.train.evaluator import EvaluatorTrainConfig, train_evaluator

    cfg = EvaluatorTrainConfig(out=out, data=data_dir, count=count, epochs=epochs, threads=threads)
    result = train_evaluator(cfg, log=typer.echo)
    typer.echo(f"wrote {result.path}; scored attributes: {', '.join(result.scored)}")


@app.command("samples")
def samples_command(
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("docs/embedded-samples.png"),
    prompt: Annotated[
        list[str] | None, typer.Option(help="Prompts, one row each (default: the showcase).")
    ] = None,
    size: Annotated[int, typer.Option(min=64, help="Side of each image in pixels.")] = 256,
) -> None:
    """Draw a labelled sheet of the shipped embedded model: one row per prompt, four seeds."""
    from imagineer.train.samples import SHOWCASE, write_sheet

    typer.echo(f"wrote {write_sheet(out, prompt or SHOWCASE, size)}")


@app.command("video")
def video_command(
    data_dir: DataOpt = Path("data/video-base"),
    run: RunOpt = Path("runs/video"),
    clips: Annotated[int, typer.Option(min=16, help="World clips to render (once).")] = 12000,
    minutes: Annotated[float, typer.Option(min=0.1, help="Training time for this run.")] = 60.0,
    batch: Annotated[int, typer.Option(min=1, help="Clips per step.")] = 4,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Render processes.")] = 2,
    object_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Extra loss weight on the pixels of moving objects (masks are made once); "
            "0 trains every pixel alike.",
        ),
    ] = 4.0,
    init: Annotated[
        Path,
        typer.Option(help="The image model's exported weights: the video model grows from them."),
    ] = Path("src/imagineer/weights/embedded_unet.safetensors"),
    export: Annotated[
        Path | None, typer.Option(help="Write EMA weights here at every checkpoint.")
    ] = None,
) -> None:
    """Render world clips at base size (once), then train (or resume) the video model on them."""
    from imagineer.train.video import VideoTrainConfig, VideoTrainer, build_clips, clip_masks

    build_clips(data_dir, clips, workers=workers, log=typer.echo)
    if object_weight > 0:
        clip_masks(data_dir, workers=workers, log=typer.echo)
    cfg = VideoTrainConfig(
        data=data_dir,
        run=run,
        init=init,
        minutes=minutes,
        batch=batch,
        threads=threads,
        object_weight=object_weight,
    )
    trainer = VideoTrainer(cfg, log=typer.echo)

    def on_checkpoint(t: VideoTrainer) -> None:
        if export is not None:
            t.export(export)

    trainer.train(on_checkpoint)
