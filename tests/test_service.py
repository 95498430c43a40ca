"""Service layer tests on a tiny random-weight embedded engine (never the shipped weights)."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imagineer.config import Settings
from imagineer.engines.base import (
    Cancelled,
    Capability,
    EngineInfo,
    GenerationInput,
    GenerationOutput,
    RunControl,
    check_batch,
)
from imagineer.engines.embedded.engine import EmbeddedEngine, stylize_to_guidance
from imagineer.engines.embedded.text import TextEncoder
from imagineer.engines.embedded.unet import UNet, UNetConfig
from imagineer.engines.embedded.upscaler import Upscaler, UpscalerConfig
from imagineer.jobs import JobState
from imagineer.media.images import read_recipe, sidecar_path
from imagineer.prompts import PromptError, size_for_aspect
from imagineer.provenance.recipe import content_hash
from imagineer.runtime import Runtime, resolve_device
from imagineer.safety import Decision
from imagineer.service import (
    GenerationResult,
    ImagineJob,
    NotAnOutput,
    RemixJob,
    SafetyRefusal,
    Service,
    UnsupportedRequest,
    UpscaleJob,
    VaryJob,
    from_payload,
    guidance_for,
    plan,
    plan_grids,
    to_payload,
)

TINY_UNET = UNetConfig.tiny()
DENY_POLICY = '[policy]\ndeny = ["zorblax"]\n'


@functools.cache
def tiny_embedded() -> EmbeddedEngine:
    """The embedded engine with tiny random networks (built once per test process)."""
    torch.manual_seed(0)
    unet = UNet(TINY_UNET)
    # Random, non-zero output layers so the pixels depend on every input.
    for p in unet.parameters():
        if p.abs().sum() == 0 and p.ndim > 1:
            torch.nn.init.normal_(p, std=0.05)
    upscaler = Upscaler(UpscalerConfig.tiny())
    return EmbeddedEngine(unet, upscaler, TextEncoder("cpu"), model_hash="0" * 64)


class SmallEngine:
    """The tiny engine planned at 128x128 (16x16 sampled) to keep each grid fast."""

    def __init__(self, inner: EmbeddedEngine, *, model_hash: str | None = None) -> None:
        self.inner = inner
        self._info = dataclasses.replace(
            inner.info, base_area=128 * 128, model_hash=model_hash or inner.info.model_hash
        )

    @property
    def info(self) -> EngineInfo:
        return self._info

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        check_batch(self, batch)
        return self.inner.generate(batch, control)


def make_runtime(settings: Settings, *, small: bool = True) -> Runtime:
    runtime = Runtime.from_settings(settings)
    engine = tiny_embedded()
    runtime.add_engine(SmallEngine(engine) if small else engine, name="embedded")
    return runtime


def quiet_settings(tmp: Path, **changes: object) -> Settings:
    """Settings in a temporary folder, with watermark and signing off unless asked."""
    # One torch thread: on a small shared CPU, two threads make tiny nets many times slower.
    base = Settings(
        data_dir=tmp / "data", output_dir=tmp / "out", watermark=False, sign=False, threads=1
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_POLICY)
    counter = itertools.count(1000, 10)
    runtime = make_runtime(quiet_settings(tmp_path, policy_file=policy))
    with runtime:
        yield Service(runtime, seed_source=lambda: next(counter))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


INFO = EngineInfo(
    name="fake",
    family="fake",
    capabilities=frozenset({Capability.TEXT_TO_IMAGE}),
    model_id="fake-1",
    model_hash="ab" * 32,
    base_area=512 * 512,
    size_multiple=64,
    default_steps=20,
    default_guidance=7.0,
)


# --- planning -------------------------------------------------------------------------------


def test_plan_maps_every_parameter() -> None:
    text = (
        "a red fox:: 2 snow::-0.5 --ar 16:9 --q 2 --s 400 --c 50 --w 300 --tile --no dog --seed 10"
    )
    items = plan(text, INFO)
    assert [item.seed for item in items] == [10, 11, 12, 13]
    first = items[0]
    assert (first.width, first.height) == size_for_aspect((16, 9), area=512 * 512, multiple=64)
    assert first.steps == 40
    assert first.guidance == pytest.approx(7.0 * stylize_to_guidance(400) / 5.0)
    assert (first.chaos, first.weird, first.tile) == (0.5, 0.1, True)
    assert first.negative_prompt == "snow, dog"
    assert first.weighted_prompts == (("a red fox", 2.0),)
    assert first.capability is Capability.TEXT_TO_IMAGE


def test_plan_draws_one_random_seed_per_request_and_draft_halves_steps() -> None:
    drawn = iter([500, 900])
    grids = plan_grids("a {cat, dog} --draft --q 0.5", INFO, seed_source=lambda: next(drawn))
    assert [[i.seed for i in g.inputs] for g in grids] == [
        [500, 501, 502, 503],
        [900, 901, 902, 903],
    ]
    assert all(g.seed_was_random for g in grids)
    assert {i.steps for g in grids for i in g.inputs} == {5}  # 20 x 0.5 x 0.5


def test_embedded_guidance_is_its_own_stylize_curve() -> None:
    embedded_like = dataclasses.replace(INFO, default_guidance=5.0)
    for stylize in (0, 100, 250, 1000):
        assert guidance_for(stylize, embedded_like) == pytest.approx(stylize_to_guidance(stylize))


def test_plan_refuses_what_it_cannot_honour_and_warns_on_version() -> None:
    with pytest.raises(UnsupportedRequest, match="--sref"):
        plan("a cat --sref 123", INFO)
    with pytest.raises(UnsupportedRequest, match="image prompts"):
        plan("https://example.com/a.png a cat", INFO)
    with pytest.raises(PromptError):
        plan("a cat --chaos 500", INFO)
    assert "--v 6" in plan_grids("a cat --v 6", INFO)[0].warnings[0]


# --- imagine, remix, vary, upscale ----------------------------------------------------------


def test_imagine_writes_four_images_a_grid_and_recipes(service: Service) -> None:
    seen: list[tuple[int, int]] = []
    result = service.imagine(
        "a red bird at sunset --seed 7 --no rain",
        steps=2,
        on_progress=lambda s, t: seen.append((s, t)),
    )
    assert len(result.images) == 4 and len(result.grids) == 1
    assert result.seeds == (7,) and result.engine == "embedded"
    for index, image in enumerate(result.images):
        assert image.path.is_file() and sidecar_path(image.path).is_file()
        recipe = read_recipe(image.path)
        assert recipe == image.recipe
        assert (recipe.seed, recipe.index, recipe.kind, recipe.steps) == (
            7 + index,
            index,
            "imagine",
            2,
        )
        assert recipe.negative_prompt == "rain"
        assert pixels(image.path).shape == (128, 128, 3)
    assert pixels(result.grids[0]).shape == (256, 256, 3)
    assert seen[-1] == (2, 2) and [s for s, _ in seen] == sorted(s for s, _ in seen)


def test_same_seed_same_pixels_and_remix_reproduces_them(service: Service) -> None:
    first = service.imagine("a blue house --seed 3", steps=2)
    again = service.imagine("a blue house --seed 3", steps=2)
    other = service.imagine("a blue house --seed 4", steps=2)
    assert np.array_equal(pixels(first.paths[1]), pixels(again.paths[1]))
    assert not np.array_equal(pixels(first.paths[0]), pixels(other.paths[0]))
    remixed = service.remix(first.paths[2])
    assert len(remixed.images) == 4 and remixed.warnings == () and remixed.seeds == (3,)
    for original, again in zip(first.paths, remixed.paths, strict=True):
        assert np.array_equal(pixels(again), pixels(original))
    recipe = remixed.recipes[2]
    assert recipe.kind == "remix" and recipe.seed == 5
    assert recipe.parent == content_hash(first.paths[2].read_bytes())
    twice = service.remix(remixed.paths[2])  # a remix's recipe re-renders it too
    assert np.array_equal(pixels(twice.paths[2]), pixels(first.paths[2]))


def test_remix_with_a_new_prompt_keeps_seed_and_size(service: Service) -> None:
    first = service.imagine("a blue house --seed 3", steps=2)
    remixed = service.remix(first.paths[1], prompt="a green house")
    assert [r.seed for r in remixed.recipes] == [3, 4, 5, 6]
    recipe = remixed.recipes[1]
    assert (recipe.width, recipe.steps, recipe.positive_prompt) == (128, 2, "a green house")
    assert not np.array_equal(pixels(remixed.paths[1]), pixels(first.paths[1]))
    reseeded = service.remix(first.paths[1], prompt="a green house --seed 40 --ar 2:1")
    assert [r.seed for r in reseeded.recipes] == [40, 41, 42, 43]
    assert reseeded.recipes[0].width == 2 * reseeded.recipes[0].height


def test_remix_warns_when_the_model_differs(service: Service) -> None:
    first = service.imagine("a blue house --seed 3", steps=2)
    service.runtime.add_engine(SmallEngine(tiny_embedded(), model_hash="f" * 64), name="embedded")
    remixed = service.remix(first.paths[0])
    assert any("model differs" in w for w in remixed.warnings)


def test_vary_makes_new_seeds_and_records_the_parent(service: Service) -> None:
    first = service.imagine("a red bird --seed 7", steps=2)
    varied = service.vary(first.paths[0], strength="strong", steps=2)
    assert len(varied.images) == 4 and len(varied.grids) == 1
    parent = content_hash(first.paths[0].read_bytes())
    for image in varied.images:
        assert image.recipe.parent == parent and image.recipe.kind == "vary"
        assert image.recipe.extras["strength"] == 0.7
        assert image.recipe.extras["capability"] == "image-to-image"
    assert varied.seeds == (1000,)  # from the seed source, not the original --seed 7
    with pytest.raises(UnsupportedRequest, match="remix the image it came from"):
        service.remix(varied.paths[0])


def test_upscale_doubles_the_size_and_records_the_parent(service: Service) -> None:
    first = service.imagine("a red bird --seed 7", steps=2)
    up = service.upscale(first.paths[1], factor=2)
    assert pixels(up.paths[0]).shape == (256, 256, 3)
    recipe = up.recipes[0]
    assert recipe.kind == "upscale" and recipe.extras["scale"] == 2
    assert recipe.parent == content_hash(first.paths[1].read_bytes())
    assert recipe.prompt == first.recipes[1].prompt


def test_grids_and_files_without_recipes_are_refused(service: Service, tmp_path: Path) -> None:
    first = service.imagine("a red bird --seed 7", steps=2)
    with pytest.raises(NotAnOutput, match="grid"):
        service.vary(first.grids[0])
    photo = tmp_path / "photo.png"
    Image.new("RGB", (128, 128), (90, 120, 200)).save(photo)
    with pytest.raises(NotAnOutput, match="give a prompt"):
        service.vary(photo)
    varied = service.vary(photo, prompt="a blue sky", steps=1)
    assert varied.recipes[0].parent == content_hash(photo.read_bytes())


def test_safety_refusal_is_typed_and_recorded(service: Service) -> None:
    with pytest.raises(SafetyRefusal) as caught:
        service.imagine("a zorblax in the garden", user="ann")
    assert caught.value.category == "deployment_deny"
    since = service.runtime.store.list(limit=1)  # nothing queued or generated
    assert since == []
    from datetime import UTC, datetime, timedelta

    recent = datetime.now(UTC) - timedelta(minutes=1)
    assert service.runtime.store.count_refusals("ann", recent) == 1


def test_output_check_withholds_refused_images(service: Service) -> None:
    class RefuseFirst:
        calls = 0

        def check(self, image: Image.Image) -> Decision:
            self.calls += 1
            if self.calls == 1:
                return Decision(False, "test_output", "refused by the test", (), "")
            return Decision(True, None, "allowed", (), "")

    service.runtime.set_output_checker(RefuseFirst())
    result = service.imagine("a red bird --seed 7", steps=1)
    assert len(result.images) == 3 and len(result.withheld) == 1
    assert [image.recipe.index for image in result.images] == [1, 2, 3]


def test_cancel_stops_before_anything_is_written(service: Service) -> None:
    asked: list[int] = []

    def stop_after_first_step() -> bool:
        asked.append(1)
        return len(asked) > 1

    with pytest.raises(Cancelled):
        service.imagine("a red bird --seed 7", steps=3, should_cancel=stop_after_first_step)
    assert not service.runtime.settings.output_dir.exists()


def test_device_auto_follows_cuda() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cuda:1") == "cuda:1"


def test_marked_outputs_verify(tmp_path: Path) -> None:
    settings = quiet_settings(tmp_path, watermark=True, sign=True)
    with make_runtime(settings, small=False) as runtime:
        service = Service(runtime)
        result = service.imagine("a red bird --seed 7", steps=1)
        image = result.images[0]
        assert image.watermarked and image.signed
        verdict = service.verify(image.path)
        assert verdict.finding == "manifest_valid"
        assert verdict.watermark is not None and verdict.watermark.found
        assert verdict.watermark_matches_recipe
        up = service.upscale(image.path)
        edited = service.verify(up.paths[0])
        assert edited.manifest.actions[:2] == ("c2pa.opened", "c2pa.edited")
        assert edited.manifest.ingredients[0].title == image.path.name


# --- jobs -----------------------------------------------------------------------------------


def test_job_payloads_round_trip_and_refuse_unknown_keys() -> None:
    for request in (
        ImagineJob("a cat", steps=2),
        VaryJob("/x.png", strength="strong"),
        UpscaleJob("/x.png", factor=4),
        RemixJob("/x.png", prompt="a dog"),
    ):
        assert from_payload(request.kind, to_payload(request)) == request
    with pytest.raises(ValueError, match="unknown keys"):
        from_payload("imagine", {"prompt": "a cat", "colour": "red"})
    with pytest.raises(ValueError, match="factor"):
        UpscaleJob("/x.png", factor=3)


def test_jobs_submit_work_done(service: Service, tmp_path: Path) -> None:
    job = service.submit(ImagineJob("a red bird --seed 9", out_dir=str(tmp_path / "q"), steps=1))
    assert job.state is JobState.QUEUED and job.payload["prompt"] == "a red bird --seed 9"
    with pytest.raises(PromptError):
        service.submit(ImagineJob("a red bird --chaos 500"))
    with pytest.raises(SafetyRefusal):
        service.submit(ImagineJob("zorblax"))
    done = service.worker("test-worker").run_once()
    assert done is not None and done.state is JobState.DONE, done
    result = GenerationResult.from_dict(done.result or {})
    assert len(result.images) == 4 and all(p.is_file() for p in result.paths)
    assert result.paths[0].parent == tmp_path / "q" / job.id / "1"  # one folder per attempt
    assert [j.id for j in service.jobs()] == [job.id]


def test_cancel_a_queued_job(service: Service) -> None:
    job = service.submit(ImagineJob("a red bird"))
    assert service.cancel(job.id).state is JobState.CANCELLED
    assert service.worker("w").run_once() is None


def test_runtime_builds_nothing_until_asked(tmp_path: Path) -> None:
    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "data"))
    assert not (tmp_path / "data").exists()
    assert [spec.name for spec in runtime.registry.specs()] == ["embedded", "embedded-video"]
    assert not (tmp_path / "data").exists()
    runtime.store.list()
    assert (tmp_path / "data" / "jobs.sqlite3").is_file()
    runtime.close()
