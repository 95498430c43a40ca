"""The embedded video model: growth from image weights, conditioning, clips and the engine."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from imagineer.engines.base import Capability, GenerationInput, RunControl
from imagineer.engines.embedded.text import TextEncoder, TextStates
from imagineer.engines.embedded.unet import UNet, UNetConfig
from imagineer.engines.embedded.video_unet import (
    ClipCondition,
    VideoUNet,
    VideoUNetConfig,
    camera_index,
)
from imagineer.train.video import (
    CONTEXT_FRAMES,
    ClipSet,
    VideoTrainConfig,
    VideoTrainer,
    build_clips,
    clip_masks,
    known_frames,
    video_flow_loss,
)
from imagineer.video.camera import CAMERA_MOVES, CameraPath
from imagineer.video.learned import VIDEO_FILE, LearnedVideoEngine, _window_plan
from test_service import tiny_embedded
from test_video import pattern

TINY = UNetConfig.tiny()


def _text(b: int) -> TextStates:
    return TextEncoder("cpu").encode(["a city at dusk"] * b)


def _cond(b: int, size: int = 8, *, camera: int = 0) -> ClipCondition:
    gen = torch.Generator().manual_seed(1)
    return ClipCondition(
        start=torch.rand(b, 3, size, size, generator=gen) * 2 - 1,
        end=torch.zeros(b, 3, size, size),
        has_start=torch.ones(b),
        has_end=torch.zeros(b),
        camera=torch.full((b,), camera),
    )


def _randomised(model: torch.nn.Module, seed: int = 0) -> None:
    """Give the zero-initialised layers random weights so every input reaches the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def test_grown_video_model_first_draws_each_frame_as_the_image_model() -> None:
    torch.manual_seed(0)
    image = UNet(TINY)
    _randomised(image)
    video = VideoUNet(VideoUNetConfig(unet=TINY, frames=4))
    video.load_image_weights(image.state_dict())
    x = torch.randn(2 * 4, 3, 8, 8)
    t = torch.rand(8)
    text = _text(2)
    with torch.no_grad():
        got = video.forward_clip(x, t, text, _cond(2, camera=5))
        want = image(
            x, t, type(text)(text.tokens.repeat_interleave(4, 0), text.mask.repeat_interleave(4, 0))
        )
    assert torch.allclose(got, want, atol=1e-5)


def test_temporal_layers_and_conditioning_reach_other_frames() -> None:
    video = VideoUNet(VideoUNetConfig(unet=TINY, frames=4))
    _randomised(video)
    x = torch.randn(4, 3, 8, 8)
    t, text = torch.full((4,), 0.5), _text(1)
    with torch.no_grad():
        base = video.forward_clip(x, t, text, _cond(1))
        moved = x.clone()
        moved[0] += 1.0  # change frame 0 only
        other = video.forward_clip(moved, t, text, _cond(1))
        camera = video.forward_clip(x, t, text, _cond(1, camera=7))
    assert not torch.allclose(base[3], other[3])  # frame 3 saw frame 0 through time
    assert not torch.allclose(base[2], camera[2])  # the camera class is heard


def test_camera_classes_are_distinct_and_cover_every_move() -> None:
    for light in (False, True):
        classes = {camera_index(m, s, light) for m in CAMERA_MOVES for s in ("low", "high")}
        first = 2 * len(CAMERA_MOVES) if light else 0
        assert classes == set(range(first, first + 2 * len(CAMERA_MOVES)))


def test_weights_from_before_the_light_flag_grow_into_a_model_that_first_ignores_it() -> None:
    old = VideoUNet(VideoUNetConfig(unet=TINY, frames=4, light_change=False))
    _randomised(old)
    new = VideoUNet(VideoUNetConfig(unet=TINY, frames=4))
    assert new.load_grown(old.state_dict())
    x, t, text = torch.randn(4, 3, 8, 8), torch.full((4,), 0.5), _text(1)
    with torch.no_grad():
        want = old.forward_clip(x, t, text, _cond(1, camera=3))
        still = new.forward_clip(x, t, text, _cond(1, camera=3))
        light = new.forward_clip(x, t, text, _cond(1, camera=3 + 2 * len(CAMERA_MOVES)))
    assert torch.allclose(still, want, atol=1e-6) and torch.allclose(light, want, atol=1e-6)
    assert VideoUNetConfig.from_dict(old.video_cfg.to_dict()).light_change is False


def test_known_frames_always_give_the_first_and_mix_end_and_extension() -> None:
    known, has_end = known_frames(400, 16, 0.2, 0.2, torch.Generator().manual_seed(0))
    assert bool(known[:, 0].all())
    assert bool(known[has_end, -1].all()) and not bool(known[~has_end, -1].any())
    extended = known[:, 1:CONTEXT_FRAMES].all(dim=1)
    assert 0.1 < float(has_end.float().mean()) < 0.3 and 0.1 < float(extended.float().mean()) < 0.3
    assert not bool((extended & has_end).any())


def test_loss_counts_only_the_frames_that_are_not_given() -> None:
    video = VideoUNet(VideoUNetConfig(unet=TINY, frames=4))
    x0 = torch.rand(2, 4, 3, 8, 8) * 2 - 1
    camera = torch.zeros(2, dtype=torch.long)
    all_known = torch.ones(2, 4, dtype=torch.bool)
    all_known[:, 1] = False
    gen = torch.Generator().manual_seed(3)
    loss = video_flow_loss(
        video, x0, _text(2), camera, all_known, torch.zeros(2, dtype=torch.bool), gen
    )
    loss.backward()
    assert torch.isfinite(loss)
    # a given frame's content changes nothing when the model cannot see across frames yet
    x1 = x0.clone()
    x1[:, 2] = 0.0
    again = video_flow_loss(
        video, x1, _text(2), camera, all_known, torch.zeros(2, dtype=torch.bool),
        torch.Generator().manual_seed(3),
    )  # fmt: skip
    assert float(again.detach()) == pytest.approx(float(loss.detach()), rel=1e-5)


def test_training_clips_are_rendered_captioned_and_batched(tmp_path: Path) -> None:
    build_clips(tmp_path, 3, workers=1, log=lambda _: None)
    data = ClipSet.load(tmp_path)
    assert data.clips.shape == (3, 16, 32, 32, 3)
    x0, text, camera = data.batch(torch.tensor([0, 2]))
    assert x0.shape == (2, 16, 3, 32, 32) and -1.0 <= float(x0.min()) <= float(x0.max()) <= 1.0
    assert text.tokens.shape[0] == 2 and camera.shape == (2,)
    records = [json.loads(line) for line in (tmp_path / "clips.jsonl").read_text().splitlines()]
    for record, cls in zip(records, data.cameras.tolist(), strict=True):
        path = CameraPath.from_text(record["camera"])
        assert camera_index(path.move, path.motion, record["time_to"] is not None) == cls
    frames = data.clips[0].astype(int)
    assert np.abs(frames[-1] - frames[0]).mean() > 0  # the world moved


def test_object_masks_mark_the_moving_objects_and_weigh_the_loss(tmp_path: Path) -> None:
    build_clips(tmp_path, 6, workers=1, log=lambda _: None)
    clip_masks(tmp_path, workers=1, log=lambda _: None)
    data = ClipSet.load(tmp_path)
    assert data.masks is not None and data.masks.shape == (6, 16, 32, 32)
    records = [json.loads(line) for line in (tmp_path / "clips.jsonl").read_text().splitlines()]
    for record, mask in zip(records, data.masks, strict=True):
        has_objects = record["scene"]["objects"] is not None
        assert bool(mask.any()) == has_objects  # objects, and only objects, are marked
        if has_objects:
            assert float(mask.mean()) < 0.5
    idx = torch.tensor([i for i, r in enumerate(records) if r["scene"]["objects"] is not None][:1])
    x0, text, camera = data.batch(idx)
    known, has_end = known_frames(1, 16, 0.0, 0.0, torch.Generator().manual_seed(0))
    video = VideoUNet(VideoUNetConfig(unet=TINY))

    def loss(weight: torch.Tensor | None) -> float:
        gen = torch.Generator().manual_seed(2)
        with torch.no_grad():
            return float(video_flow_loss(video, x0, text, camera, known, has_end, gen, 1.0, weight))

    plain, ones = loss(None), loss(torch.ones(1, 16, 1, 32, 32))
    assert ones == pytest.approx(plain, rel=1e-5)  # a flat weight changes nothing
    assert loss(1.0 + 5.0 * data.object_mask(idx)) != pytest.approx(plain, rel=1e-3)


def test_window_plan_covers_the_clip_and_restarts_from_context() -> None:
    assert _window_plan(10) == [(0, 10)]
    assert _window_plan(16) == [(0, 16)]
    plan = _window_plan(31)
    assert plan[0] == (0, 16) and all(size <= 16 for _, size in plan)
    assert plan[-1][0] + plan[-1][1] == 31
    assert all(start == a + s - CONTEXT_FRAMES for (a, s), (start, _) in itertools.pairwise(plan))


# --- the engine ------------------------------------------------------------------------------


def _engine(tmp_path: Path) -> LearnedVideoEngine:
    """A video engine exported and loaded the way training ships it, with random weights."""
    image = tiny_embedded()
    state = {k: v.half() for k, v in image.unet.state_dict().items()}
    init = tmp_path / "image.safetensors"
    save_file(state, str(init), metadata={"config": json.dumps(TINY.to_dict())})
    cfg = VideoTrainConfig(data=tmp_path, run=tmp_path / "run", init=init, minutes=0.01)
    trainer = VideoTrainer(cfg, log=lambda _: None)
    _randomised(trainer.ema, seed=4)
    assert trainer.export(tmp_path / "weights").name == VIDEO_FILE
    return LearnedVideoEngine.load(image, tmp_path / "weights")


def clip(**changes: object) -> GenerationInput:
    base = GenerationInput(
        Capability.TEXT_TO_VIDEO, "a city at sunset", width=64, height=64, seed=5, steps=2,
        num_frames=24, fps=24,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_learned_engine_makes_deterministic_clips_of_the_length_asked(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    out = engine.generate([clip()], RunControl())[0]
    again = engine.generate([clip()], RunControl())[0]
    assert len(out.frames) == 24 and out.frames[0].shape == (64, 64, 3)
    assert all(np.array_equal(a, b) for a, b in zip(out.frames, again.frames, strict=True))
    extras = dict(out.extras)
    assert extras["method"] == "trained video model" and extras["base_frames"] == 7
    assert "step" in engine.info.model_id
    long = engine.generate([clip(num_frames=24 * 5)], RunControl())[0]
    assert len(long.frames) == 120 and dict(long.extras)["windows"] == 3


def test_learned_engine_keeps_given_frames_and_closes_loops(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    start, end = pattern(seed=2), pattern(seed=9)
    i2v = clip(
        capability=Capability.IMAGE_TO_VIDEO,
        init_image=start,
        camera=CameraPath("pan_left", "high"),
    )
    out = engine.generate([i2v], RunControl())[0]
    assert np.array_equal(out.frames[0], start)
    ended = engine.generate([dataclasses.replace(i2v, end_image=end)], RunControl())[0]
    assert np.array_equal(ended.frames[0], start) and np.array_equal(ended.frames[-1], end)
    looped = engine.generate([dataclasses.replace(i2v, loop=True)], RunControl())[0]
    frames = [f.astype(int) for f in looped.frames]
    steps = [np.abs(b - a).mean() for a, b in itertools.pairwise(frames)]
    assert np.abs(frames[0] - frames[-1]).mean() <= 2 * max(steps) + 1


def test_runtime_routes_to_the_trained_model_when_its_weights_sit_beside_the_image_weights(
    tmp_path: Path,
) -> None:
    from imagineer.engines.registry import EngineRegistry
    from imagineer.runtime import EMBEDDED, embedded_video_spec, loaded_spec
    from imagineer.video.zeroshot import ZeroShotVideoEngine

    engine = _engine(tmp_path)
    image = engine.image
    registry = EngineRegistry()
    registry.register(loaded_spec(image, name=EMBEDDED))
    registry.register(embedded_video_spec(registry))
    assert type(registry.get("embedded-video")) is ZeroShotVideoEngine  # no folder: zero-shot
    image.folder = tmp_path / "weights"
    registry = EngineRegistry()
    registry.register(loaded_spec(image, name=EMBEDDED))
    registry.register(embedded_video_spec(registry))
    assert isinstance(registry.get("embedded-video"), LearnedVideoEngine)
