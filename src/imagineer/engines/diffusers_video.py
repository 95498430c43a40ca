"""The diffusers video engine: text-to-video and image-to-video with a registered checkpoint
(AnimateDiff, LTX-Video, Wan, CogVideoX, Stable Video Diffusion). Clips come back as frames;
imagineer.media.video writes them as MP4, WebM or GIF."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagineer.engines.base import (
    Capability,
    EngineError,
    EngineInfo,
    FrameCounts,
    GenerationInput,
    GenerationOutput,
    RunControl,
    check_batch,
    run_in_groups,
)
from imagineer.engines.diffusers_shared import (
    PromptMapper,
    call_kwargs,
    check_images,
    generators,
    info_for,
    init_picture,
    pipeline_key,
    step_callback,
    to_uint8,
)
from imagineer.models.catalog import ModelEntry
from imagineer.models.families import Family, family
from imagineer.models.loading import ModelManager

ANIMATEDIFF_FRAMES = 32  # motion_max_seq_length of the published AnimateDiff adapters
# Stable Video Diffusion's motion bucket for --motion low / high (127 is its default).
MOTION_BUCKETS = {"low": 127, "high": 200}


class DiffusersVideoEngine:
    """One registered video model behind the engine contract; weights load on first use."""

    def __init__(self, entry: ModelEntry, manager: ModelManager) -> None:
        self.entry = manager.verified(entry)
        self.manager = manager
        self.family: Family = family(self.entry.family)
        self.prompts = PromptMapper(self.entry)
        self.max_frames = max_frames(self.entry)
        counts = frame_counts(self.family, self.max_frames)
        self._info = dataclasses.replace(info_for(self.entry), frame_counts=counts)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        check_batch(self, batch)
        for i, item in enumerate(batch):
            self._check(i, item)
        return run_in_groups(batch, lambda items: self._run(items, control), pipeline_key)

    def frames_for(self, item: GenerationInput) -> int:
        """Frames to render: the item's, or the model's default when it asks for one."""
        return item.num_frames if item.num_frames > 1 else self.entry.frames

    def _check(self, i: int, item: GenerationInput) -> None:
        """Refuse what this family would silently ignore, naming what to change."""
        name, fam = self.entry.name, self.family.name
        step, offset = self.family.frames_rule
        frames = self.frames_for(item)
        if (frames - offset) % step:
            near = max(offset + step, (frames - offset) // step * step + offset)
            raise EngineError(
                f"item {i}: {frames} frames: {name} ({fam}) needs {step}k+{offset} frames, "
                f"e.g. {near}"
            )
        if self.max_frames is not None and frames > self.max_frames:
            raise EngineError(
                f"item {i}: {frames} frames: {name} ({fam}) renders at most {self.max_frames} "
                f"frames a clip ({self.max_frames / item.fps:.1f} s at {item.fps} fps): "
                "ask for a shorter clip"
            )
        if item.end_image is not None or item.loop:
            raise EngineError(
                f"item {i}: --end and --loop need a model that conditions on a last frame; "
                f"{name} ({fam}) does not"
            )
        if item.motion != "low" and fam != "svd":
            raise EngineError(
                f"item {i}: --motion {item.motion}: {name} ({fam}) has no motion control"
            )
        if item.tile:
            raise EngineError(f"item {i}: --tile is for images; remove it for a video")
        camera = getattr(item, "camera", None)  # a camera path (imagineer.video.camera)
        if camera is not None and getattr(camera, "move", "static") != "static":
            raise EngineError(
                f"item {i}: camera move {camera.move!r}: {name} ({fam}) draws its own motion "
                "and cannot follow a camera path; leave the camera move out"
            )

    def _run(self, items: Sequence[GenerationInput], control: RunControl) -> list[GenerationOutput]:
        # 1. check inputs
        capability = items[0].capability
        if capability is Capability.IMAGE_TO_VIDEO:
            check_images(items, capability)
        with self.manager.pipeline(self.entry, capability) as (pipe, placement):
            # 2. map the request, 3. seed, 4. denoise and decode every frame
            clips = self._call(pipe, items, control)
            extras: dict[str, str | int | float | bool] = {
                "pipeline": type(pipe).__name__,
                "fps": items[0].fps,
            }
            if placement.offload != "none":
                extras["offload"] = placement.offload
        return [
            GenerationOutput(
                frames=tuple(clip),
                seed=item.seed,
                steps=item.steps,
                guidance=item.guidance,
                extras=tuple(extras.items()),
            )
            for clip, item in zip(clips, items, strict=True)
        ]

    def _call(
        self, pipe: Any, items: Sequence[GenerationInput], control: RunControl
    ) -> list[np.ndarray]:
        first = items[0]
        wanted: dict[str, Any] = {
            "height": first.height,
            "width": first.width,
            "num_frames": self.frames_for(first),
            "num_inference_steps": first.steps,
            "generator": generators(items),
            "output_type": "np",
            "callback_on_step_end": step_callback(control, first.steps),
            "fps": first.fps,
            "frame_rate": first.fps,
        }
        if self.family.name == "svd":  # image-only conditioning, guidance ramps min..max
            wanted["max_guidance_scale"] = first.guidance
            wanted["motion_bucket_id"] = MOTION_BUCKETS[first.motion]
            if len(items) > 1:
                raise EngineError("Stable Video Diffusion renders one clip per call")
        else:
            wanted.update(self.prompts.arguments(pipe, items))
            wanted["guidance_scale"] = first.guidance
        if first.capability is Capability.IMAGE_TO_VIDEO:
            pictures = [init_picture(item) for item in items]
            wanted["image"] = pictures[0] if len(pictures) == 1 else pictures
        kwargs = call_kwargs(pipe, wanted, required=("generator", "num_frames"))
        result = pipe(**kwargs)
        clips = to_uint8(result.frames)  # (B, F, H, W, 3)
        if clips.ndim != 5:
            raise EngineError(f"{type(pipe).__name__} returned frames of shape {clips.shape}")
        return list(clips)


def frame_counts(fam: Family, most: int | None) -> FrameCounts:
    """The clip lengths one call renders: the family's k*a+b rule, up to `most` frames."""
    step, offset = fam.frames_rule
    return FrameCounts(step, offset, max(2, step + offset), most)


def max_frames(entry: ModelEntry) -> int | None:
    """Most frames one call can render: AnimateDiff's motion modules have a fixed number of
    positions (motion_max_seq_length, 32 for the published adapters); None: no fixed limit."""
    if entry.family != "animatediff":
        return None
    for part in ("unet", "motion_adapter"):
        config = Path(entry.path) / part / "config.json"
        if config.is_file():
            limit = json.loads(config.read_text()).get("motion_max_seq_length")
            if isinstance(limit, int):
                return limit
    return ANIMATEDIFF_FRAMES
