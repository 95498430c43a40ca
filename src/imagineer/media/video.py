"""Short clips on disk through PyAV: MP4 (H.264), WebM (VP9) and GIF; reading back, posters, sheets.

Licence: PyAV's wheels bundle FFmpeg built with libx264, which is GPL-2.0-or-later. Shipping
imagineer together with those wheels puts that bundle under the GPL's terms; an operator who
must avoid GPL code can write WebM (libvpx, BSD licence) or GIF instead of MP4.

GIF timing: GIF stores each frame's delay in hundredths of a second, so 24 fps is written as
delays of 4 cs with a 5 about every sixth frame. The clip still lasts frames / fps seconds
(48 frames at 24 fps: 2.00 s), but FFmpeg reports the stream's average rate as 25 fps.
`VideoInfo.fps` says what FFmpeg says; `frame_count / duration_s` gives the rate it plays at.

The recipe of a clip goes into the container's `comment` tag (MP4 and WebM) and always into a
sidecar `<file name>.json`; `imagineer.media.images.read_recipe` reads either back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import numpy as np
from PIL import Image

from imagineer.media.files import atomic_path
from imagineer.media.formats import find_format, resolve_format_path
from imagineer.media.images import array_to_image, is_recipe_json, make_grid, write_sidecar
from imagineer.provenance.recipe import Recipe


@dataclass(frozen=True)
class VideoFormat:
    """One clip format imagineer writes."""

    name: str  # "mp4", "webm", "gif"
    suffix: str
    codec: str  # FFmpeg encoder
    pix_fmt: str
    max_crf: int  # crf scales differ: x264 0-51, VP9 0-63; GIF ignores crf
    even_size: bool  # H.264 in yuv420p needs even width and height


VIDEO_FORMATS: Final = (
    VideoFormat("mp4", ".mp4", "libx264", "yuv420p", 51, True),
    VideoFormat("webm", ".webm", "libvpx-vp9", "yuv420p", 63, False),
    VideoFormat("gif", ".gif", "gif", "pal8", 63, False),
)
SUPPORTED_VIDEO_FORMATS: Final = tuple(f.name for f in VIDEO_FORMATS)
_MAX_FPS: Final = 240


@dataclass(frozen=True)
class VideoInfo:
    """What `read_video` found, counted by decoding every frame."""

    frame_count: int
    fps: float  # the stream's average rate as FFmpeg reports it (GIF: see the module note)
    width: int
    height: int
    duration_s: float
    codec: str  # FFmpeg decoder name: "h264", "vp9", "gif"
    frames: tuple[np.ndarray, ...] = ()  # each (H, W, 3) uint8 when read with keep_frames


def video_format(name: str) -> VideoFormat:
    """The format called `name` ("mp4", "webm", "gif"); ValueError for anything else."""
    return find_format(name, VIDEO_FORMATS, "video")


def resolve_video_path(path: Path, fmt: str | None) -> tuple[Path, VideoFormat]:
    """The path to write and its format: from `fmt` when given, else from the suffix."""
    return resolve_format_path(path, fmt, video_format, SUPPORTED_VIDEO_FORMATS)


def write_video(
    frames: Iterable[np.ndarray],
    path: Path,
    *,
    fps: int = 24,
    fmt: str | None = None,
    crf: int = 23,
    recipe: Recipe | None = None,
) -> Path:
    """Encode (H, W, 3) uint8 RGB frames into a clip, atomically; return the path written.

    Frames may be a list or any iterable (a generator streams without holding them all).
    MP4 is H.264 yuv420p with the index up front for web playback; WebM is VP9; GIF gets a
    palette quantised per frame. `crf` sets quality (lower is better) for MP4 and WebM.
    """
    # 1. check inputs
    path, chosen = resolve_video_path(Path(path), fmt)
    _check_int("fps", fps, 1, _MAX_FPS)
    _check_int("crf", crf, 0, chosen.max_crf)
    stream_of_frames = iter(frames)
    first = next(stream_of_frames, None)
    if first is None:
        raise ValueError("write_video needs at least one frame")
    height, width = _check_frame(0, first, None)
    if chosen.even_size and (width % 2 or height % 2):
        raise ValueError(
            f"{chosen.name} (H.264, yuv420p) needs even width and height, got {width}x{height}: "
            "crop or pad the frames, or write webm/gif"
        )
    # 2. encode into a temporary file, 3. rename it into place, 4. write the sidecar
    with atomic_path(path) as tmp:
        all_frames = itertools.chain([first], stream_of_frames)
        _encode(tmp, chosen, all_frames, (height, width), fps, crf, recipe)
    write_sidecar(path, recipe)
    return path


def _encode(
    tmp: Path,
    fmt: VideoFormat,
    frames: Iterator[np.ndarray],
    shape: tuple[int, int],
    fps: int,
    crf: int,
    recipe: Recipe | None,
) -> None:
    container_options = {"movflags": "+faststart"} if fmt.name == "mp4" else {}
    with av.open(str(tmp), mode="w", format=fmt.name, options=container_options) as container:
        if recipe is not None and fmt.name != "gif":
            container.metadata["comment"] = recipe.to_json()
        stream = container.add_stream(fmt.codec, rate=fps, options=_codec_options(fmt, crf))
        if not isinstance(stream, av.VideoStream):
            raise TypeError(f"codec {fmt.codec} made a {type(stream).__name__}, not a video stream")
        stream.height, stream.width = shape
        stream.pix_fmt = fmt.pix_fmt
        for i, frame in enumerate(frames):
            _check_frame(i, frame, shape)
            video_frame = _gif_frame(frame) if fmt.name == "gif" else _rgb_frame(frame)
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))


def _codec_options(fmt: VideoFormat, crf: int) -> dict[str, str]:
    if fmt.name == "mp4":
        return {"crf": str(crf), "preset": "medium"}
    if fmt.name == "webm":
        # b=0 makes crf a constant-quality target; cpu-used 4 is ~2x faster than the default
        return {"crf": str(crf), "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
    return {}


def _rgb_frame(frame: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")


def _gif_frame(frame: np.ndarray) -> av.VideoFrame:
    # GIF needs palette images; FFmpeg cannot take RGB frames for pal8 (see the module note).
    quantised = Image.fromarray(np.ascontiguousarray(frame)).quantize(
        256, method=Image.Quantize.FASTOCTREE
    )
    rgb = np.array(quantised.getpalette() or [], dtype=np.uint8).reshape(-1, 3)[:256]
    palette = np.zeros((256, 4), dtype=np.uint8)  # ARGB, as PyAV expects for pal8
    palette[:, 0] = 255
    palette[: len(rgb), 1:] = rgb
    indices = np.asarray(quantised, dtype=np.uint8)  # (H, W)
    return av.VideoFrame.from_ndarray((indices, palette), format="pal8")  # type: ignore[arg-type]


def _check_frame(index: int, frame: object, shape: tuple[int, int] | None) -> tuple[int, int]:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        kind = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame {index} is {kind}: frames must be uint8 numpy arrays")
    if frame.ndim != 3 or frame.shape[2] != 3 or not frame.shape[0] or not frame.shape[1]:
        raise ValueError(f"frame {index} has shape {frame.shape}: expected (H, W, 3) RGB")
    if shape is not None and frame.shape[:2] != shape:
        raise ValueError(
            f"frame {index} is {frame.shape[1]}x{frame.shape[0]} but frame 0 is "
            f"{shape[1]}x{shape[0]}: all frames of a clip must share one size"
        )
    return frame.shape[0], frame.shape[1]


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}={value!r}: use an integer from {low} to {high}")


def read_video(path: Path, *, keep_frames: bool = True) -> VideoInfo:
    """Decode a clip: frame count (by decoding; WebM headers say 0), rate, size, duration."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            frames: list[np.ndarray] = []
            count = 0
            for frame in container.decode(stream):
                count += 1
                if keep_frames:
                    frames.append(frame.to_ndarray(format="rgb24"))  # (H, W, 3)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = float((stream.duration or 0) * (stream.time_base or 0))
            return VideoInfo(
                frame_count=count,
                fps=float(rate or 0),
                width=stream.width,
                height=stream.height,
                duration_s=duration,
                codec=stream.codec_context.name,
                frames=tuple(frames),
            )
    except av.error.FFmpegError as err:
        raise ValueError(f"{path.name} is not a video FFmpeg can read: {err}") from err


def video_recipe_json(path: Path) -> str | None:
    """The recipe JSON in an MP4/WebM `comment` tag, or None (GIF has no tags: see sidecar)."""
    try:
        with av.open(str(path)) as container:
            tags = {key.lower(): value for key, value in container.metadata.items()}
    except av.error.FFmpegError:
        return None
    comment = tags.get("comment")
    return comment if comment is not None and is_recipe_json(comment) else None


def poster_frame(source: Path | Sequence[np.ndarray], *, position: float = 0.0) -> Image.Image:
    """One frame as a still: `position` 0.0 is the first frame, 1.0 the last, 0.5 the middle."""
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position={position}: use 0.0 (first frame) to 1.0 (last frame)")
    if isinstance(source, str | Path):
        count = 1 if position == 0.0 else read_video(Path(source), keep_frames=False).frame_count
        return array_to_image(_decode_frame(Path(source), round(position * (count - 1))))
    if len(source) == 0:
        raise ValueError("poster_frame needs at least one frame")
    return array_to_image(source[round(position * (len(source) - 1))])


def _decode_frame(path: Path, index: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i == index:
                    return frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as err:
        raise ValueError(f"{path.name} is not a video FFmpeg can read: {err}") from err
    raise ValueError(f"{path.name} has no frame {index}")


def contact_sheet(
    frames: Sequence[np.ndarray], cols: int = 4, every: int = 1, *, gap: int = 2
) -> Image.Image:
    """A grid of every `every`-th frame, `cols` to a row: a glance at a whole clip."""
    _check_int("every", every, 1, max(1, len(frames)))
    picked = list(frames)[::every]
    if not picked:
        raise ValueError("contact_sheet needs at least one frame")
    return make_grid([array_to_image(frame) for frame in picked], cols=cols, gap=gap)
