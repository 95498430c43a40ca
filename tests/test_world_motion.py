"""The world in motion: still frames equal render(), things move as their paths say, the light
moves on, the camera crops like the engine's warps, and the clips written for training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imagineer.media.video import read_video
from imagineer.video.camera import CameraPath, Pose
from imagineer.video.warp import from_uint8_frames, to_uint8_frames, warp
from imagineer.world import ObjectGroup, Scene, render
from imagineer.world.motion import (
    WorldMotion,
    _apply_camera,
    next_time,
    render_clip,
    render_frame,
    sample_motion,
    write_clips,
)

CITY = Scene(
    "sunset", "cloudy", "hills", "futuristic", ObjectGroup("flying_car", "red", 2, "left"), seed=5
)


def test_a_frame_at_rest_is_the_still_render() -> None:
    for scene in (
        CITY,
        Scene(
            "night", "rainy", "sea", "skyline", ObjectGroup("bird", "white", 3, "right"), "neon", 9
        ),
    ):
        assert np.array_equal(
            render_frame(WorldMotion(scene), 0.0, 64, 64), render(scene, 64, 64, supersample=2)
        )


def test_things_move_and_still_things_stay() -> None:
    motion = WorldMotion(CITY, seconds=4.0, cloud_speed=0.05)
    first, last = render_frame(motion, 0.0, 96, 96), render_frame(motion, 1.0, 96, 96)
    sky = np.abs(first[:40].astype(int) - last[:40]).mean()  # cars and clouds move up there
    still = WorldMotion(CITY, seconds=4.0, object_speed=0.0, cloud_speed=0.0, sun_drop=0.0)
    assert sky > 2.0
    assert np.array_equal(render_frame(still, 1.0, 96, 96), first)


def test_the_light_moves_on_to_the_next_time_of_day() -> None:
    motion = WorldMotion(CITY, time_to=next_time("sunset"), object_speed=0.0, cloud_speed=0.0)
    end = render_frame(motion, 1.0, 64, 64)
    dusk = render(
        Scene("dusk", "cloudy", "hills", "futuristic", CITY.objects, seed=5), 64, 64, supersample=2
    )
    assert np.abs(end.astype(int) - dusk).mean() < 3.0
    assert next_time("night") == "night"


def test_the_camera_crops_as_the_engine_warps() -> None:
    picture = render(CITY, 96, 96)
    pose = Pose(zoom=1.4, x=0.08, y=-0.05, roll=3.0)
    mine = _apply_camera(picture, pose)
    engine = to_uint8_frames(
        warp(from_uint8_frames([picture]), pose.matrix()[None], mode="bicubic")[0]
    )[0]
    assert np.abs(mine.astype(int) - engine).mean() < 2.5


def test_clips_have_the_frames_their_length_says() -> None:
    motion = WorldMotion(CITY, seconds=1.0, camera=CameraPath("dolly_in", "high"))
    frames = render_clip(motion, 32, 32, fps=12)
    assert len(frames) == 12 and frames[0].shape == (32, 32, 3)
    assert not np.array_equal(frames[0], frames[-1])
    with pytest.raises(ValueError, match="fps"):
        render_clip(motion, 32, 32, fps=0)
    with pytest.raises(ValueError, match="seconds"):
        WorldMotion(CITY, seconds=0)
    with pytest.raises(ValueError, match="time_to"):
        WorldMotion(CITY, time_to="teatime")


def test_random_motions_are_reproducible_and_write_training_clips(tmp_path: Path) -> None:
    a = sample_motion(np.random.default_rng(3))
    assert a == sample_motion(np.random.default_rng(3))
    index = write_clips(tmp_path / "clips", 2, seed=1, size=32, fps=6)
    records = [json.loads(line) for line in index.read_text().splitlines()]
    assert len(records) == 2 and records[0]["caption"]
    clip = read_video(tmp_path / "clips" / records[0]["file"])
    assert clip.frame_count == records[0]["frames"] and clip.width == 32
    assert CameraPath.from_text(records[1]["camera"]).move in records[1]["camera"]
