"""Clips, extend and reels through the service layer and the CLI, on the tiny random-weight
engine of test_service (128 px clips), with every file read back."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from imagineer.cli import CliHooks, app
from imagineer.config import Settings
from imagineer.engines.base import (
    Capability,
    EngineInfo,
    GenerationInput,
    GenerationOutput,
    RunControl,
)
from imagineer.media.images import read_recipe
from imagineer.media.video import read_video
from imagineer.runtime import EMBEDDED_VIDEO, Runtime
from imagineer.service import Service, UnsupportedRequest
from imagineer.service.video import VideoOptions, retime
from imagineer.video.zeroshot import ZeroShotConfig, ZeroShotVideoEngine
from test_service import DENY_POLICY, quiet_settings, tiny_embedded

SIDE = 128
Run = Callable[..., tuple[str, str, int]]  # (args...) -> (stdout, stderr, exit code)


class SmallVideo:
    """The zero-shot engine over the tiny image model, planned at 128 px to keep clips fast."""

    def __init__(self) -> None:
        config = ZeroShotConfig(min_base_frames=6, base_fps=4)
        self.inner = ZeroShotVideoEngine(tiny_embedded(), config)
        self._info = dataclasses.replace(self.inner.info, base_area=SIDE * SIDE)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        return self.inner.generate(batch, control)


def video_runtime(settings: Settings) -> Runtime:
    runtime = Runtime.from_settings(settings)
    runtime.add_engine(tiny_embedded(), name="embedded")
    runtime.add_engine(SmallVideo(), name=EMBEDDED_VIDEO)
    return runtime


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_POLICY)
    with video_runtime(quiet_settings(tmp_path, policy_file=policy)) as runtime:
        yield Service(runtime, seed_source=lambda: 1234)


def options(tmp_path: Path, *formats: str) -> VideoOptions:
    return VideoOptions(formats=formats or ("mp4",), out_dir=tmp_path / "out", steps=1)


def picture(tmp_path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
    path = tmp_path / f"picture{seed}.png"
    Image.fromarray(small).resize((SIDE, SIDE), Image.Resampling.BICUBIC).save(path)
    return path


def test_reel_writes_a_24_fps_mp4_poster_and_sheet_with_its_storyboard(
    service: Service, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    opts = dataclasses.replace(
        options(tmp_path, "mp4", "gif"), on_progress=lambda s, t: seen.append((s, t))
    )
    result = service.video.reel(
        "a futuristic city at sunset with flying cars", seconds=3, options=opts
    )
    assert [v.format for v in result.videos] == ["mp4", "gif"]
    info = read_video(result.path)
    assert (info.frame_count, info.fps, info.width, info.height) == (72, 24.0, SIDE, SIDE)
    assert read_video(result.videos[1].path).frame_count == 72
    recipe = read_recipe(result.path)
    assert recipe is not None and recipe.kind == "reel" and recipe.seed == 1234
    board = json.loads(str(recipe.extras["storyboard"]))
    assert [s["role"] for s in board["shots"]] == ["establishing", "ending"]
    assert board["shots"][1]["line"] == "a futuristic city at dusk with flying cars"
    assert result.storyboard is not None and result.engine == EMBEDDED_VIDEO
    with Image.open(result.poster.path) as poster, Image.open(result.contact_sheet.path) as sheet:
        assert poster.size == (SIDE, SIDE) and sheet.size[1] == 2 * SIDE + 2
    assert seen[-1] == (1000, 1000) and [s for s, _ in seen] == sorted(s for s, _ in seen)


def test_animate_keeps_the_image_as_the_first_frame_and_loops(
    service: Service, tmp_path: Path
) -> None:
    source = picture(tmp_path)
    result = service.video.animate(
        source, prompt="a city", loop=True, seconds=1, options=options(tmp_path)
    )
    info = read_video(result.path)
    assert info.frame_count == 24
    with Image.open(source) as image:
        first_error = np.abs(info.frames[0].astype(int) - np.asarray(image)).mean()
    assert first_error < 6  # only H.264's loss
    recipe = read_recipe(result.path)
    assert recipe is not None and recipe.kind == "animate" and recipe.extras["loop"] is True
    assert recipe.parent is not None  # the source image's hash
    with pytest.raises(FileNotFoundError):
        service.video.animate(tmp_path / "missing.png", prompt="x", options=options(tmp_path))


def test_animate_without_a_prompt_needs_a_recipe(service: Service, tmp_path: Path) -> None:
    from imagineer.service import NotAnOutput

    with pytest.raises(NotAnOutput, match="give a prompt"):
        service.video.animate(picture(tmp_path), options=options(tmp_path))


def test_extend_continues_from_the_last_frame(service: Service, tmp_path: Path) -> None:
    clip = service.video.animate(
        picture(tmp_path), prompt="a city", camera="pan_right", seconds=1, options=options(tmp_path)
    )
    longer = service.video.extend(clip.path, seconds=1, options=options(tmp_path))
    before, after = read_video(clip.path), read_video(longer.path)
    assert after.frame_count == before.frame_count + 24
    recipe = read_recipe(longer.path)
    assert recipe is not None and recipe.extras["extended_s"] == 1
    assert str(recipe.extras["camera"]).startswith("pan_right")
    jump = np.abs(after.frames[24].astype(int) - after.frames[23]).mean()
    assert jump < 12  # the new part starts where the old one ended


def test_imagine_video_makes_a_clip_and_grids_refuse_video(
    service: Service, tmp_path: Path
) -> None:
    result = service.video.imagine_video(
        "rolling hills at noon --video --motion high --seed 3", seconds=1, options=options(tmp_path)
    )
    assert read_video(result.path).frame_count == 24 and result.seed == 3
    with pytest.raises(UnsupportedRequest, match="--video in an image grid"):
        service.imagine("rolling hills --video", out_dir=tmp_path / "o", steps=1)
    with pytest.raises(UnsupportedRequest, match="add --video"):
        service.video.imagine_video("rolling hills", options=options(tmp_path))
    with pytest.raises(UnsupportedRequest, match="with `imagineer animate`"):
        service.video.reel("hills --loop", options=options(tmp_path))
    with pytest.raises(ValueError, match="video format 'avi'"):
        options(tmp_path, "avi")


def test_marked_and_signed_clip_verifies(service: Service, tmp_path: Path) -> None:
    settings = dataclasses.replace(service.runtime.settings, watermark=True, sign=True)
    with video_runtime(settings) as runtime:
        runtime.add_engine(_Big(), name=EMBEDDED_VIDEO)
        marked = Service(runtime, seed_source=lambda: 77)
        result = marked.video.animate(
            picture(tmp_path), prompt="a city", seconds=1, options=options(tmp_path)
        )
        verdict = marked.verify(result.path)
    assert result.videos[0].signed and result.videos[0].watermarked
    assert verdict.finding == "manifest_valid"
    assert verdict.watermark is not None and verdict.watermark.found
    assert verdict.watermark_matches_recipe is True


class _Big(SmallVideo):
    """256 px clips: the smallest size the watermark goes on."""

    def __init__(self) -> None:
        super().__init__()
        self._info = dataclasses.replace(self.inner.info, base_area=256 * 256)


def test_the_runtime_routes_video_to_the_zero_shot_engine(tmp_path: Path) -> None:
    with Runtime.from_settings(quiet_settings(tmp_path)) as runtime:
        runtime.add_engine(tiny_embedded(), name="embedded")
        route = runtime.router.route(Capability.IMAGE_TO_VIDEO)
    assert route.name == EMBEDDED_VIDEO and isinstance(route.engine, ZeroShotVideoEngine)


def test_retime_fills_the_frames_asked_for() -> None:
    frames = [np.full((2, 2, 3), v, np.uint8) for v in (0, 100)]
    out = retime(frames, 5)
    assert [int(f[0, 0, 0]) for f in out] == [0, 25, 50, 75, 100]
    assert retime(frames, 2) is frames


# --- CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    for name in ("DATABASE_URL", "DEVICE", "OUTPUT_DIR", "DEFAULT_MODEL", "POLICY_FILE"):
        monkeypatch.delenv(f"IMAGINEER_{name}", raising=False)

    def make(settings: Settings) -> Runtime:
        quiet = dataclasses.replace(settings, watermark=False, sign=False, threads=1)
        return video_runtime(quiet)

    def run(*args: str) -> tuple[str, str, int]:
        result = CliRunner().invoke(
            app, ["--data-dir", str(tmp_path / "data"), *args], obj=CliHooks(make_runtime=make)
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.stdout, result.stderr, result.exit_code

    return run


def test_cli_reel_animate_extend_and_imagine_video(cli: Run, tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    text, _, code = cli(
        "reel",
        "a futuristic city at sunset with flying cars",
        "--seconds",
        "2",
        "--out",
        out,
        "--steps",
        "1",
    )
    assert code == 0 and "shot 2 ending" in text and "mp4:" in text and "48 frames" in text
    data, _, code = cli(
        "animate",
        str(picture(tmp_path)),
        "--prompt",
        "a city",
        "--seconds",
        "1",
        "--format",
        "webm",
        "--out",
        out,
        "--json",
    )
    assert code == 0
    clip = json.loads(data)["videos"][0]
    assert clip["format"] == "webm" and read_video(Path(clip["path"])).frame_count == 24
    text, _, code = cli("extend", clip["path"], "--seconds", "1", "--out", out)
    assert code == 0 and "48 frames" in text
    text, _, code = cli("imagine", "hills at dawn --video --seed 4", "--out", out, "--steps", "1")
    assert code == 0 and "120 frames" in text
    _, err, code = cli("animate", "no-such-thing", "--prompt", "x", "--out", out)
    assert code == 1 and "no job with that id" in err
    _, err, code = cli(
        "animate", str(picture(tmp_path)), "--prompt", "x", "--camera", "zoom", "--out", out
    )
    assert code == 1 and "use one of static" in err


class FixedClips:
    """A stand-in for a trained video model: 8 frames of its own, whatever length is asked."""

    def __init__(self) -> None:
        self._info = dataclasses.replace(
            SmallVideo().info, name="fixed", family="fixed", model_id="fixed-1"
        )
        self.asked: list[GenerationInput] = []

    @property
    def info(self) -> EngineInfo:
        return self._info

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        self.asked += batch
        frames = tuple(np.full((SIDE, SIDE, 3), 30 * k, np.uint8) for k in range(8))
        return [GenerationOutput(frames, item.seed, item.steps, item.guidance) for item in batch]


def test_another_video_engine_drops_in_and_is_retimed(service: Service, tmp_path: Path) -> None:
    engine = FixedClips()
    service.runtime.add_engine(engine, name="fixed")
    result = service.video.reel(
        "rolling hills at noon --model fixed", seconds=2, options=options(tmp_path)
    )
    assert result.engine == "fixed" and read_video(result.path).frame_count == 48
    assert result.storyboard is not None
    assert [item.num_frames for item in engine.asked] == [s.frames for s in result.storyboard.shots]
    assert all(item.camera is not None for item in engine.asked)  # the storyboard's cameras
