"""Video parts on their own: camera paths, warps, metrics, storyboards, stitching, the encoding
round trip and the zero-shot engine's contract on a tiny random-weight image model."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from imagineer.engines.base import (
    Cancelled,
    Capability,
    EngineError,
    GenerationInput,
    RunControl,
)
from imagineer.media.video import read_video, write_video
from imagineer.video.camera import CAMERA_MOVES, SPEEDS, CameraPath, Pose, relative
from imagineer.video.metrics import camera_speed, temporal_report
from imagineer.video.reel import contact_sheet, poster_index, shot_frames, stitch
from imagineer.video.storyboard import build_storyboard, read_spec
from imagineer.video.warp import (
    estimate_motion,
    frame_positions,
    from_uint8_frames,
    interpolate,
    lerp_mats,
    to_uint8_frames,
    warp,
)
from imagineer.video.zeroshot import ZeroShotConfig, ZeroShotVideoEngine
from test_service import tiny_embedded

SIZE = 64  # output side of the tiny engine's clips (8 px sampled)


def pattern(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """A smooth random picture: warps of it are well defined."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
    x = from_uint8_frames([small])
    big = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return to_uint8_frames(big)[0]


# --- camera ------------------------------------------------------------------------------------


def test_identity_pose_sees_the_whole_picture() -> None:
    np.testing.assert_allclose(Pose().matrix(), [[1, 0, 0], [0, 1, 0]])
    image = from_uint8_frames([pattern()])
    warped, inside = warp(image, Pose().matrix()[None])
    assert torch.allclose(warped, image, atol=1e-5) and bool(inside.all())


def test_pan_speed_follows_motion_and_high_is_faster() -> None:
    low = CameraPath("pan_right", "low").pose(1.0, 4.0)
    high = CameraPath("pan_right", "high").pose(1.0, 4.0)
    assert low.x == pytest.approx(SPEEDS["low"].pan * 4.0)
    assert high.x == pytest.approx(3 * low.x)
    assert CameraPath("pan_left", "low").pose(1.0, 4.0).x == pytest.approx(-low.x)
    assert CameraPath("dolly_in", "high").pose(1.0, 2.0).zoom > 1.2


@pytest.mark.parametrize("move", CAMERA_MOVES)
def test_contained_paths_never_leave_the_picture(move: str) -> None:
    path = CameraPath(move, "high").contained(5.0, aspect=16 / 9)
    corners = np.array([[-1, -1, 1], [1, -1, 1], [-1, 1, 1], [1, 1, 1]], dtype=float)
    for m in path.matrices(25, 5.0, aspect=16 / 9):
        assert np.abs(corners @ m.T).max() <= 1.0 + 1e-6


def test_loop_returns_to_its_start_and_text_round_trips() -> None:
    path = CameraPath("orbit_left", "high", Pose(zoom=1.2, x=0.05), loop=True)
    assert path.pose(1.0, 3.0) == pytest.approx(path.pose(0.0, 3.0))
    assert CameraPath.from_text(path.to_text()) == path
    assert CameraPath.from_text("dolly_in") == CameraPath("dolly_in")
    with pytest.raises(ValueError, match="use one of static"):
        CameraPath("zoom_in")
    with pytest.raises(ValueError, match="cannot read"):
        CameraPath.from_text("pan_left speed=3")


def test_relative_matrix_composes_back_to_the_identity() -> None:
    a = Pose(zoom=1.3, x=0.1, roll=4).matrix()
    np.testing.assert_allclose(relative(a, a), [[1, 0, 0], [0, 1, 0]], atol=1e-12)


# --- warps and the temporal step ------------------------------------------------------------------


def test_motion_compensated_interpolation_matches_the_true_intermediate_view() -> None:
    picture = from_uint8_frames([pattern(seed=3)])
    path = CameraPath("pan_right", "high", Pose(zoom=1.5))
    mats = path.matrices(5, 2.0)
    out_mats = path.matrices(17, 2.0)
    base, _ = warp(picture, mats)
    truth, _ = warp(picture, out_mats)
    flow = interpolate(base, 17, mats=mats, out_mats=out_mats)
    blend = interpolate(base, 17)
    flow_err = (flow - truth).abs().mean().item()
    blend_err = (blend - truth).abs().mean().item()
    assert flow.shape == (17, 3, SIZE, SIZE)
    assert flow_err < blend_err / 3  # compensation, not a cross-fade
    assert torch.allclose(flow[0], base[0], atol=1e-4)
    assert torch.allclose(flow[-1], base[-1], atol=1e-4)


def test_interpolate_rejects_half_the_matrices() -> None:
    with pytest.raises(ValueError, match="both"):
        interpolate(torch.zeros(2, 3, 4, 4), 3, mats=np.zeros((2, 2, 3)))


# --- metrics -------------------------------------------------------------------------------------


def test_compensated_error_is_small_for_pure_camera_motion_and_noise_flickers() -> None:
    path = CameraPath("pan_right", "high", Pose(zoom=1.5))
    mats = path.matrices(12, 2.0)
    frames = to_uint8_frames(warp(from_uint8_frames([pattern(seed=1)]), mats)[0])
    moving = temporal_report(frames, mats)
    uncompensated = temporal_report(frames)
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8) for f in frames]
    assert moving.compensated_error < uncompensated.compensated_error / 3
    assert temporal_report(noisy, mats).jitter > 4 * moving.jitter
    assert moving.camera_px_per_frame == pytest.approx(camera_speed(mats, (SIZE, SIZE)))
    assert moving.camera_px_per_frame > 0
    with pytest.raises(ValueError, match="at least 3"):
        temporal_report(frames[:2])


# --- storyboard and stitching -----------------------------------------------------------------


def test_read_spec_finds_the_world_attributes_a_prompt_states() -> None:
    spec = read_spec("two red birds on the left over the sea at dawn, watercolor").spec
    assert (spec.kind, spec.colour, spec.count, spec.position) == ("bird", "red", 2, "left")
    assert (spec.time, spec.landscape, spec.style) == ("dawn", "sea", "watercolor")
    city = read_spec("a futuristic city at sunset with flying cars").spec
    assert (city.city, city.time, city.kind, city.count) == (
        "futuristic",
        "sunset",
        "flying_car",
        None,
    )
    assert read_spec("a red fox").spec.mentioned == frozenset()


def test_ten_second_storyboard_has_the_four_shots_and_240_frames() -> None:
    board = build_storyboard("a futuristic city at sunset with flying cars", seconds=10)
    assert [s.role for s in board.shots] == ["establishing", "closer", "move", "ending"]
    assert board.total_frames == 240 and board.fps == 24
    assert board.shots[-1].line == "a futuristic city at dusk with flying cars"
    assert board.shots[-1].transition == "crossfade" and board.shots[1].transition == "cut"
    assert board.shots[2].seed_offset == 1
    ranges = board.ranges()
    assert ranges[0][0] == 0 and ranges[-1][1] == 240
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert board.shots[1].camera.start.zoom > 1.1  # the closer shot starts closer


@pytest.mark.parametrize(("seconds", "shots"), [(1, 1), (3, 2), (5, 3), (7.5, 4)])
def test_storyboard_length_decides_the_shots(seconds: float, shots: int) -> None:
    board = build_storyboard("rolling hills at noon", seconds=seconds, fps=12)
    assert len(board.shots) == shots and board.total_frames == round(seconds * 12)


def test_storyboard_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="1 to 60"):
        build_storyboard("a city", seconds=0.5)
    with pytest.raises(ValueError, match="needs a prompt"):
        build_storyboard("  ")


def test_stitch_crossfades_into_the_ending_and_sheets_one_row_per_shot() -> None:
    board = build_storyboard("a city at noon", seconds=5, fps=8)
    clips = [
        [np.full((16, 16, 3), 60 * k, np.uint8) for _ in range(shot.frames)]
        for k, shot in enumerate(board.shots)
    ]
    frames = stitch(clips, board)
    assert len(frames) == board.total_frames == 40
    start = sum(s.frames for s in board.shots[:-1]) - board.crossfade
    fade = [int(f[0, 0, 0]) for f in frames[start : start + board.crossfade]]
    assert fade == sorted(fade) and 60 < fade[0] < fade[-1] < 120  # shot 2 -> shot 3
    assert [len(f) for f in shot_frames(frames, board)] == [b - a for a, b in board.ranges()]
    sheet = contact_sheet(frames, board, per_shot=4)
    assert sheet.size == (4 * 16 + 3 * 2, 3 * 16 + 2 * 2)
    assert 0 <= poster_index(board) < board.ranges()[0][1]
    with pytest.raises(ValueError, match="expected"):
        stitch([c[:-1] for c in clips], board)


# --- the engine contract -------------------------------------------------------------------------


@functools.cache
def engine() -> ZeroShotVideoEngine:
    return ZeroShotVideoEngine(tiny_embedded(), ZeroShotConfig(min_base_frames=6, base_fps=3))


def clip_input(**changes: object) -> GenerationInput:
    base = GenerationInput(
        Capability.TEXT_TO_VIDEO, "a city at sunset", width=SIZE, height=SIZE, seed=5, steps=2,
        num_frames=12, fps=24,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_text_to_video_returns_the_frames_asked_for_and_is_deterministic() -> None:
    out = engine().generate([clip_input()], RunControl())[0]
    again = engine().generate([clip_input()], RunControl())[0]
    assert len(out.frames) == 12 and out.frames[0].shape == (SIZE, SIZE, 3)
    assert out.frames[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(out.frames, again.frames, strict=True))
    extras = dict(out.extras)
    assert extras["method"] == "zero-shot animation from the image model"
    assert extras["base_frames"] == 6
    other = engine().generate([clip_input(seed=6)], RunControl())[0]
    assert not np.array_equal(out.frames[0], other.frames[0])


@pytest.mark.parametrize("move", ["pan_left", "dolly_out", "orbit_right", "static"])
def test_image_to_video_keeps_the_first_frame_exactly(move: str) -> None:
    image = pattern(seed=2)
    item = clip_input(
        capability=Capability.IMAGE_TO_VIDEO, init_image=image, camera=CameraPath(move, "high")
    )
    out = engine().generate([item], RunControl())[0]
    assert np.array_equal(out.frames[0], image)
    assert len(out.frames) == 12


def test_end_frame_is_reached_and_loop_closes() -> None:
    start, end = pattern(seed=2), pattern(seed=9)
    item = clip_input(capability=Capability.IMAGE_TO_VIDEO, init_image=start, end_image=end)
    out = engine().generate([item], RunControl())[0]
    assert np.array_equal(out.frames[0], start) and np.array_equal(out.frames[-1], end)
    looped = engine().generate(
        [clip_input(capability=Capability.IMAGE_TO_VIDEO, init_image=start, loop=True)],
        RunControl(),
    )[0]
    frames = [f.astype(int) for f in looped.frames]
    steps = [np.abs(b - a).mean() for a, b in itertools.pairwise(frames)]
    wrap = np.abs(frames[0] - frames[-1]).mean()
    assert wrap <= 2 * max(steps) + 1  # the last frame leads back into the first


def test_high_motion_moves_the_camera_faster() -> None:
    low = engine().generate([clip_input(motion="low")], RunControl())[0]
    high = engine().generate([clip_input(motion="high")], RunControl())[0]
    low_cam = CameraPath.from_text(str(dict(low.extras)["camera"]))
    high_cam = CameraPath.from_text(str(dict(high.extras)["camera"]))
    speed = [camera_speed(c.matrices(12, 0.5), (SIZE, SIZE)) for c in (low_cam, high_cam)]
    assert speed[1] > 2 * speed[0]


def test_engine_refuses_what_it_cannot_do() -> None:
    with pytest.raises(EngineError, match="cannot do text-to-image"):
        engine().generate([clip_input(capability=Capability.TEXT_TO_IMAGE)], RunControl())
    with pytest.raises(EngineError, match="init_image"):
        engine().generate([clip_input(capability=Capability.IMAGE_TO_VIDEO)], RunControl())
    with pytest.raises(EngineError, match="at least 2 frames"):
        engine().generate([clip_input(num_frames=1)], RunControl())


def test_engine_reports_progress_and_stops_when_asked() -> None:
    seen: list[tuple[int, int]] = []
    engine().generate([clip_input()], RunControl(on_progress=lambda s, t, _: seen.append((s, t))))
    assert seen[-1][0] == seen[-1][1] and [s for s, _ in seen] == sorted(s for s, _ in seen)
    with pytest.raises(Cancelled):
        engine().generate([clip_input()], RunControl(should_cancel=lambda: True))


@pytest.mark.parametrize("detail", ["residual", "per_frame"])
def test_both_detail_modes_make_clips(detail: str) -> None:
    config = ZeroShotConfig(min_base_frames=4, detail=detail, temporal="blend")
    out = ZeroShotVideoEngine(tiny_embedded(), config).generate([clip_input()], RunControl())[0]
    assert len(out.frames) == 12


# --- encoding round trip -------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "fps_read"), [("mp4", 24.0), ("webm", 24.0), ("gif", 25.0)])
def test_engine_clip_survives_encoding(tmp_path: Path, fmt: str, fps_read: float) -> None:
    frames = list(engine().generate([clip_input(num_frames=24)], RunControl())[0].frames)
    path = write_video(frames, tmp_path / f"clip.{fmt}", fps=24)
    info = read_video(path)
    assert info.frame_count == 24 and (info.width, info.height) == (SIZE, SIZE)
    assert info.fps == pytest.approx(fps_read)
    assert info.duration_s == pytest.approx(1.0, abs=0.05)
    if fmt == "mp4":  # H.264 at crf 23 keeps the pictures close
        err = np.mean(
            [np.abs(a.astype(int) - b).mean() for a, b in zip(frames, info.frames, strict=True)]
        )
        assert err < 8


def test_estimate_motion_recovers_a_known_camera_move_from_the_frames() -> None:
    picture = from_uint8_frames([pattern(32, seed=4)])
    truth = CameraPath("dolly_in", "high").contained(2.0).matrices(6, 2.0)
    rel = np.stack([relative(truth[0], m) for m in truth])
    frames, _ = warp(picture, rel)
    identity = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (6, 1, 1))
    found = estimate_motion(frames, identity, iterations=150)
    assert np.allclose(found[0], identity[0])
    assert np.abs(found - rel).max() < 0.02  # started from no motion at all
    assert np.abs(identity - rel).max() > 0.05  # and the move was not small


def test_lerp_mats_and_frame_positions_agree_with_interpolate() -> None:
    mats = np.stack([np.array([[1.0, 0, x], [0, 1.0, 0]]) for x in (0.0, 0.2, 0.4)])
    pos = frame_positions(3, 5)
    assert list(pos) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert np.allclose(lerp_mats(mats, pos)[:, 0, 2], [0.0, 0.1, 0.2, 0.3, 0.4])
