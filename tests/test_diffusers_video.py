"""The diffusers video engine on a tiny random-weight AnimateDiff pipeline (tiny SD UNet plus a
tiny motion adapter): the shared engine contract, clips written as MP4 through the shared media
code, and refusals of what the family would ignore."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from engine_contract import EngineContract
from imagineer.engines.base import Capability, EngineError, GenerationInput, RunControl
from imagineer.engines.diffusers_video import DiffusersVideoEngine
from imagineer.media.video import read_video, write_video
from imagineer.models import AddOptions, Catalog, entry_for
from imagineer.models.loading import ModelManager
from imagineer.models.specs import diffusers_spec
from tiny_models import tiny_animatediff_dir

FRAMES = 4


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> DiffusersVideoEngine:
    torch.set_num_threads(1)
    catalog = Catalog(tmp_path_factory.mktemp("data"))
    folder = tiny_animatediff_dir(tmp_path_factory)
    entry = entry_for(str(folder), AddOptions(name="tiny-video", steps=2))
    catalog.add(entry)
    engine = diffusers_spec(entry, ModelManager(catalog, "cpu")).load()
    assert isinstance(engine, DiffusersVideoEngine)
    return engine


class TestDiffusersVideoContract(EngineContract):
    """The shared engine contract on tiny AnimateDiff, text to video, four frames."""

    capability = Capability.TEXT_TO_VIDEO
    size = (32, 32)
    other_size = (48, 32)
    bad_width = 36
    extra: ClassVar[dict[str, Any]] = {"num_frames": FRAMES, "fps": 8}
    unsupported = Capability.IMAGE_TO_VIDEO

    @pytest.fixture
    def engine(self, video: DiffusersVideoEngine) -> DiffusersVideoEngine:
        return video


def clip_item(seed: int, **changes: object) -> GenerationInput:
    fields: dict[str, object] = dict(
        capability=Capability.TEXT_TO_VIDEO,
        prompt="a red balloon rising",
        width=32,
        height=32,
        seed=seed,
        steps=2,
        num_frames=FRAMES,
        fps=8,
    )
    fields.update(changes)
    return GenerationInput(**fields)  # type: ignore[arg-type]


def test_registry_entry_says_what_the_family_is(video: DiffusersVideoEngine) -> None:
    entry = video.entry
    assert (entry.family, entry.pipeline, entry.source) == (
        "animatediff",
        "AnimateDiffPipeline",
        "folder",
    )
    assert entry.capabilities == ("text-to-video",)
    assert entry.frames == 16 and entry.licence == "mit"


def test_a_clip_is_written_as_mp4_by_the_shared_media_code(
    video: DiffusersVideoEngine, tmp_path: Path
) -> None:
    out = video.generate([clip_item(3)], RunControl())[0]
    assert len(out.frames) == FRAMES
    assert not np.array_equal(out.frames[0], out.frames[-1])  # the frames are not one picture
    path = write_video(out.frames, tmp_path / "clip.mp4", fps=dict(out.extras)["fps"])
    info = read_video(path)
    assert (info.frame_count, info.width, info.height, info.codec) == (FRAMES, 32, 32, "h264")
    assert info.fps == pytest.approx(8)


def test_default_frames_come_from_the_registry(video: DiffusersVideoEngine) -> None:
    assert video.frames_for(clip_item(1, num_frames=1)) == video.entry.frames
    assert video.frames_for(clip_item(1)) == FRAMES


def test_the_engine_advertises_the_frame_counts_it_renders(video: DiffusersVideoEngine) -> None:
    counts = video.info.frame_counts
    assert counts is not None and counts.maximum == video.max_frames == 32
    assert counts.allows(FRAMES) and not counts.allows(33)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"motion": "high"}, "no motion control"),
        ({"loop": True}, "last frame"),
        ({"end_image": np.zeros((32, 32, 3), dtype=np.uint8)}, "last frame"),
        ({"tile": True}, "--tile is for images"),
        ({"num_frames": 40}, "at most 32 frames a clip"),
    ],
)
def test_refuses_what_the_family_would_ignore(
    video: DiffusersVideoEngine, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(EngineError, match=message):
        video.generate([clip_item(1, **changes)], RunControl())
