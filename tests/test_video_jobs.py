"""Video jobs in the queue (animate, extend, reel) run by a worker through the video service, and
the frame counts video engines advertise, which the service plans its engine calls by."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagineer.engines.base import (
    Capability,
    EngineInfo,
    FrameCounts,
    GenerationInput,
    GenerationOutput,
    RunControl,
)
from imagineer.engines.diffusers_video import frame_counts
from imagineer.jobs import JobState
from imagineer.media.images import read_recipe
from imagineer.media.video import read_video
from imagineer.models.families import family
from imagineer.runtime import EMBEDDED_VIDEO, Runtime
from imagineer.service import NotAnOutput, SafetyRefusal, Service, from_payload, to_payload
from imagineer.service.jobs import AnimateJob, ExtendJob, ReelJob
from imagineer.service.video import VideoOptions
from imagineer.video.frames import plan_frames
from test_service import DENY_POLICY, SmallEngine, quiet_settings, tiny_embedded
from test_video_service import SIDE, SmallVideo, picture

# --- the frame counts an engine advertises, and the plan of engine calls ------------------------


def test_frame_counts_round_to_the_rule_and_stop_at_the_maximum() -> None:
    ltx = FrameCounts(8, 1, 9, 257)
    assert [ltx.allows(n) for n in (9, 120, 121, 265)] == [True, False, True, False]
    assert (ltx.at_least(120), ltx.at_least(3), ltx.at_least(258)) == (121, 9, None)
    assert (ltx.at_most(120), ltx.at_most(1000), ltx.at_most(8)) == (113, 257, None)
    assert ltx.describe() == "8k+1 frames, at most 257"
    assert FrameCounts(minimum=2).describe() == "any number of frames from 2"
    with pytest.raises(ValueError, match="no frame count fits"):
        FrameCounts(8, 1, 9, 5)


def test_diffusers_video_families_advertise_their_frame_counts() -> None:
    animatediff = frame_counts(family("animatediff"), 32)
    assert animatediff == FrameCounts(1, 0, 2, 32) and not animatediff.allows(120)
    wan = frame_counts(family("wan"), None)
    assert (wan.allows(33), wan.allows(32), wan.minimum) == (True, False, 5)


def test_the_plan_keeps_retimes_continues_or_clamps_with_its_reason() -> None:
    assert plan_frames(120, None, engine="e", can_continue=True).segments == (120,)
    assert plan_frames(120, FrameCounts(minimum=2), engine="e", can_continue=True).reason == ""
    ltx = plan_frames(120, FrameCounts(8, 1, 9), engine="ltx", can_continue=True)
    assert ltx.segments == (121,) and "rendered 121 and retimed to 120" in ltx.reason
    capped = FrameCounts(1, 0, 2, 32)
    chained = plan_frames(120, capped, engine="i2v", can_continue=True)
    assert chained.segments == (32,) * 4 and chained.rendered == 125  # 4 x 31 new, + 1
    assert "made as 4 clips of 32 frames, each continuing" in chained.reason
    clamped = plan_frames(120, capped, engine="animatediff", can_continue=False)
    assert clamped.segments == (32,)
    assert "at most 32 a call" in clamped.reason and "motion 3.8x slower" in clamped.reason


class CappedVideo:
    """The small zero-shot engine saying it renders at most `most` frames a call, and refusing
    more, as AnimateDiff does; `continues`: whether it can start from an image."""

    def __init__(self, most: int, *, continues: bool) -> None:
        self.inner = SmallVideo()
        can = {Capability.TEXT_TO_VIDEO} | ({Capability.IMAGE_TO_VIDEO} if continues else set())
        self._info = dataclasses.replace(
            self.inner.info, capabilities=frozenset(can), frame_counts=FrameCounts(maximum=most)
        )
        self.asked: list[GenerationInput] = []

    @property
    def info(self) -> EngineInfo:
        return self._info

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        self.asked += batch
        counts = self._info.frame_counts
        assert counts is not None
        for item in batch:
            if not counts.allows(item.num_frames):
                raise AssertionError(f"asked for {item.num_frames} frames: {counts.describe()}")
        return self.inner.generate(batch, control)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """The small image engine and the small zero-shot video engine at 128 px."""
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_POLICY)
    with Runtime.from_settings(quiet_settings(tmp_path, policy_file=policy)) as runtime:
        runtime.add_engine(SmallEngine(tiny_embedded()), name="embedded")
        runtime.add_engine(SmallVideo(), name=EMBEDDED_VIDEO)
        yield Service(runtime, seed_source=lambda: 4321)


def options(tmp_path: Path, **changes: object) -> VideoOptions:
    return VideoOptions(out_dir=tmp_path / "out", steps=1, **changes)  # type: ignore[arg-type]


def test_a_capped_engine_makes_a_long_clip_in_calls_it_can_take(
    service: Service, tmp_path: Path
) -> None:
    engine = CappedVideo(8, continues=True)
    service.runtime.add_engine(engine, name=EMBEDDED_VIDEO)
    result = service.video.animate(
        picture(tmp_path), prompt="a city", seconds=1, options=options(tmp_path)
    )
    # 24 frames from calls of at most 8: 8 + 7 + 7 + 7 = 29 made, retimed to 24
    assert [item.num_frames for item in engine.asked] == [8, 8, 8, 8]
    first, *later = engine.asked
    assert first.init_image is not None and all(
        item.capability is Capability.IMAGE_TO_VIDEO and item.init_image is not None
        for item in later
    )  # each later call starts on the frame the call before ended on
    assert [item.seed for item in engine.asked] == [first.seed + k for k in range(4)]
    assert read_video(result.path).frame_count == 24
    recipe = read_recipe(result.path)
    assert recipe is not None
    assert "made as 4 clips of 8 frames" in str(recipe.extras["frame_plan"])
    assert any("made as 4 clips" in warning for warning in result.warnings)


def test_a_capped_text_to_video_engine_is_clamped_and_interpolated(
    service: Service, tmp_path: Path
) -> None:
    engine = CappedVideo(8, continues=False)
    service.runtime.add_engine(engine, name=EMBEDDED_VIDEO)
    result = service.video.reel("rolling hills at noon", seconds=1, options=options(tmp_path))
    assert [item.num_frames for item in engine.asked] == [8]
    assert read_video(result.path).frame_count == 24
    recipe = read_recipe(result.path)
    assert recipe is not None and "interpolated to 24" in str(recipe.extras["frame_plan"])


def test_a_clip_reports_progress_and_a_preview_of_its_first_frame(
    service: Service, tmp_path: Path
) -> None:
    source = picture(tmp_path)
    steps: list[tuple[int, int]] = []
    previews: list[tuple[int, int, np.ndarray]] = []
    service.video.animate(
        source,
        prompt="a city",
        seconds=1,
        options=options(
            tmp_path,
            on_progress=lambda s, t: steps.append((s, t)),
            on_preview=lambda s, t, frame: previews.append((s, t, frame)),
        ),
    )
    assert steps[-1] == (1000, 1000) and [s for s, _ in steps] == sorted(s for s, _ in steps)
    assert [(s, t) for s, t, _ in previews] == [(0, 1000), (1000, 1000)]
    with Image.open(source) as image:
        assert np.array_equal(previews[0][2], np.asarray(image))  # the image it starts on


# --- the queue ------------------------------------------------------------------------------------


def test_video_requests_round_trip_through_the_payload(tmp_path: Path) -> None:
    animate = AnimateJob("a.png", motion="high", loop=True, formats=("mp4", "gif", "mp4"))
    assert animate.formats == ("mp4", "gif")
    for request in (animate, ExtendJob("c.mp4", seconds=2), ReelJob("hills", seconds=3)):
        payload = to_payload(request)
        assert from_payload(request.kind, payload) == request
    with pytest.raises(ValueError, match="loop and end conflict"):
        AnimateJob("a.png", loop=True, end="b.png")
    with pytest.raises(ValueError, match="motion='wild'"):
        AnimateJob("a.png", motion="wild")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use 1 to 60 seconds"):
        ReelJob("hills", seconds=600)
    with pytest.raises(ValueError, match="video format 'avi'"):
        ReelJob("hills", formats=("avi",))


def test_queueing_checks_the_prompt_the_source_and_the_safety_gate(
    service: Service, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    plain = picture(tmp_path)
    with pytest.raises(NotAnOutput, match="give a prompt to animate it"):
        service.submit(AnimateJob(str(plain)))
    with pytest.raises(NotAnOutput, match="not a clip"):
        service.submit(ExtendJob(str(plain)))
    with pytest.raises(SafetyRefusal):
        service.submit(ReelJob("a zorblax over the sea"))
    with pytest.raises(SafetyRefusal):
        service.submit(AnimateJob(str(plain), prompt="a zorblax"))
    assert service.jobs() == []  # nothing refused was queued
    assert service.runtime.store.count_refusals("local", started) == 2  # both audited
    job = service.submit(AnimateJob(str(plain), prompt="a city", seconds=1))
    assert job.kind == "animate" and job.batch_key == "" and job.payload["path"] == str(plain)


def test_a_worker_runs_animate_then_extend_then_a_reel(service: Service, tmp_path: Path) -> None:
    worker = service.worker("w1", max_batch=4)
    image_job = service.submit(
        AnimateJob(str(picture(tmp_path)), prompt="a city", seconds=1, formats=("mp4", "webm"))
    )
    done = worker.run_once()
    assert done is not None and done.state is JobState.DONE, done and done.error
    result = done.result
    assert result is not None and [v["format"] for v in result["videos"]] == ["mp4", "webm"]
    mp4 = Path(result["videos"][0]["path"])
    assert mp4.parent == tmp_path / "out" / image_job.id / "1"  # the attempt's own folder
    assert read_video(mp4).frame_count == 24
    assert (
        Path(result["poster"]["path"]).is_file() and Path(result["contact_sheet"]["path"]).is_file()
    )
    assert not service.preview_path(done).exists()  # the preview goes when the job ends

    service.submit(ExtendJob(str(mp4), seconds=1))
    longer = worker.run_once()
    assert longer is not None and longer.state is JobState.DONE, longer and longer.error
    assert longer.result is not None
    assert read_video(Path(longer.result["videos"][0]["path"])).frame_count == 48

    service.submit(ReelJob("rolling hills at noon", seconds=2, formats=("gif",)))
    reel = worker.run_once()
    assert reel is not None and reel.state is JobState.DONE, reel and reel.error
    assert reel.result is not None and reel.result["storyboard"] is not None
    gif = Path(reel.result["videos"][0]["path"])
    assert gif.suffix == ".gif" and read_video(gif).frame_count == 48
    recipe = read_recipe(gif)
    assert recipe is not None and recipe.kind == "reel" and recipe.width == SIDE
