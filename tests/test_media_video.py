"""Clip output through PyAV: MP4/WebM/GIF round trips, GIF timing, recipes, posters, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from imagineer.media.images import read_recipe, sidecar_path
from imagineer.media.video import (
    contact_sheet,
    poster_frame,
    read_video,
    resolve_video_path,
    video_recipe_json,
    write_video,
)
from imagineer.provenance.recipe import Recipe, Versions, content_hash

W, H, N = 64, 48, 48


def moving_frames(count: int = N, width: int = W, height: int = H) -> list[np.ndarray]:
    """A bright square sliding over a gradient: each frame differs, so order shows."""
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        frame = np.stack([x * 3, y * 4, np.full_like(x, 60)], axis=-1).astype(np.uint8)
        left = t % (width - 8)
        frame[8:24, left : left + 8] = (250, 250, 40)
        frames.append(frame)
    return frames


@pytest.fixture
def recipe() -> Recipe:
    return Recipe(
        prompt="a paper boat drifting --motion low",
        kind="animate",
        engine="embedded",
        model="imagineer-embedded-video-v1",
        model_hash=content_hash(b"video weights"),
        seed=3,
        steps=12,
        guidance=4.5,
        width=W,
        height=H,
        parent=content_hash(b"the still it was animated from"),
        versions=Versions(imagineer="0.1.0"),
        created_at="2026-11-23T12:00:00+00:00",
    )


@pytest.mark.parametrize(("fmt", "codec", "fps"), [("mp4", "h264", 24), ("webm", "vp9", 24)])
def test_round_trip_count_rate_size(tmp_path: Path, fmt: str, codec: str, fps: int) -> None:
    frames = moving_frames()
    path = write_video(frames, tmp_path / f"clip.{fmt}", fps=fps)
    info = read_video(path)
    assert (info.frame_count, info.width, info.height, info.codec) == (N, W, H, codec)
    assert info.fps == 24.0
    assert info.duration_s == pytest.approx(N / fps, abs=0.01)
    assert len(info.frames) == N and info.frames[0].shape == (H, W, 3)
    errors = [np.abs(a.astype(int) - b).mean() for a, b in zip(info.frames, frames, strict=True)]
    assert max(errors) < 6  # lossy, but each decoded frame is its own source frame
    swapped = np.abs(info.frames[0].astype(int) - frames[20]).mean()
    assert swapped > 2 * max(errors)


def test_gif_round_trip_and_its_timing(tmp_path: Path) -> None:
    frames = moving_frames()
    info = read_video(write_video(frames, tmp_path / "clip.gif", fps=24))
    assert (info.frame_count, info.width, info.height, info.codec) == (N, W, H, "gif")
    # GIF delays are whole hundredths: 24 fps is stored as 4, 4, 5, ... cs. FFmpeg then
    # reports 25 fps, yet the clip lasts the right 2.00 s, so count / duration is 24.
    assert info.fps == 25.0
    assert info.duration_s == pytest.approx(2.0, abs=1e-6)
    assert info.frame_count / info.duration_s == pytest.approx(24.0)
    errors = [np.abs(a.astype(int) - b).mean() for a, b in zip(info.frames, frames, strict=True)]
    assert max(errors) < 6  # quantised per frame with its own palette


def test_frames_stream_from_a_generator(tmp_path: Path) -> None:
    def generate() -> Iterator[np.ndarray]:
        yield from moving_frames(10)

    info = read_video(write_video(generate(), tmp_path / "clip.mp4", fps=12), keep_frames=False)
    assert (info.frame_count, info.fps, info.frames) == (10, 12.0, ())


def test_format_from_fmt_and_odd_sizes(tmp_path: Path) -> None:
    odd = moving_frames(4, width=65, height=47)
    assert write_video(odd, tmp_path / "odd", fmt="webm").name == "odd.webm"
    assert read_video(tmp_path / "odd.webm").width == 65
    with pytest.raises(ValueError, match="needs even width and height, got 65x47"):
        write_video(odd, tmp_path / "odd.mp4")
    assert not (tmp_path / "odd.mp4").exists()


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_recipe_in_container_tag(tmp_path: Path, recipe: Recipe, fmt: str) -> None:
    path = write_video(moving_frames(6), tmp_path / f"clip.{fmt}", recipe=recipe)
    sidecar_path(path).unlink()
    assert video_recipe_json(path) is not None
    assert read_recipe(path) == recipe


def test_gif_recipe_lives_in_the_sidecar(tmp_path: Path, recipe: Recipe) -> None:
    path = write_video(moving_frames(6), tmp_path / "clip.gif", recipe=recipe)
    assert video_recipe_json(path) is None
    assert read_recipe(path) == recipe
    sidecar_path(path).unlink()
    assert read_recipe(path) is None


@pytest.mark.parametrize(
    ("frames", "kwargs", "needle"),
    [
        ([], {}, "at least one frame"),
        ([np.zeros((8, 8, 3), np.float32)], {}, "frame 0 is float32"),
        ([np.zeros((8, 8), np.uint8)], {}, r"frame 0 has shape \(8, 8\)"),
        ([np.zeros((8, 8, 3), np.uint8)] * 3 + [np.zeros((8, 10, 3), np.uint8)], {}, "frame 3"),
        ([np.zeros((8, 8, 3), np.uint8)], {"fps": 0}, "fps=0"),
        ([np.zeros((8, 8, 3), np.uint8)], {"crf": 52}, "crf=52: use an integer from 0 to 51"),
        ([np.zeros((8, 8, 3), np.uint8)], {"fmt": "avi"}, "use one of mp4, webm, gif"),
    ],
)
def test_bad_input_is_refused_and_leaves_no_file(
    tmp_path: Path, frames: list[np.ndarray], kwargs: dict[str, object], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        write_video(frames, tmp_path / "clip.mp4", **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_read_video_refuses_non_videos(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="not a video FFmpeg can read"):
        read_video(junk)
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "missing.webm")


def test_poster_frame_and_contact_sheet(tmp_path: Path) -> None:
    frames = moving_frames(9)
    path = write_video(frames, tmp_path / "clip.webm")
    decoded = read_video(path).frames
    assert np.array_equal(np.array(poster_frame(path)), decoded[0])
    assert np.array_equal(np.array(poster_frame(path, position=1.0)), decoded[8])
    assert np.array_equal(np.array(poster_frame(frames, position=0.5)), frames[4])
    with pytest.raises(ValueError, match=r"position=1\.5"):
        poster_frame(frames, position=1.5)
    sheet = contact_sheet(frames, cols=3, every=2, gap=2)  # frames 0, 2, 4, 6, 8: 3 + 2 rows
    assert sheet.size == (3 * W + 4, 2 * H + 2)
    assert np.array_equal(np.array(sheet)[:H, W + 2 : 2 * W + 2], frames[2])
    with pytest.raises(ValueError, match="every=0"):
        contact_sheet(frames, every=0)


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("clip", "webm", ("clip.webm", "webm")),
        ("clip.GIF", None, ("clip.GIF", "gif")),
        ("clip.v2", "mp4", ("clip.v2", "mp4")),  # a suffix of the caller's own is kept
        ("clip.mp4", "mp4", ("clip.mp4", "mp4")),
    ],
)
def test_resolve_video_path(name: str, fmt: str | None, expected: tuple[str, str]) -> None:
    path, chosen = resolve_video_path(Path(name), fmt)
    assert (path.name, chosen.name) == expected


@pytest.mark.parametrize(
    ("name", "fmt", "needle"),
    [
        ("a.avi", None, "unknown video format '.avi': use one of mp4, webm, gif"),
        ("a.mp4", "mkv", "unknown video format 'mkv': use one of mp4, webm, gif"),
        ("a", None, "has no suffix: add one or pass fmt (mp4, webm, gif)"),
        ("a.mp4", "gif", "ends in .mp4 but fmt='gif'"),
    ],
)
def test_bad_video_format_names(name: str, fmt: str | None, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        resolve_video_path(Path(name), fmt)
    assert needle in str(err.value)
