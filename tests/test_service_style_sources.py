"""Where --sref references come from: pinned by path and hash when a job is queued (a worker in
another folder reads the same file, a changed file fails the job), `job:ID/INDEX` naming the
caller's own images only, and paths refused from their text for callers who may not read files."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imagineer.jobs import JobState
from imagineer.prompts import PromptError, parse
from imagineer.provenance.recipe import content_hash
from imagineer.service import (
    GenerationResult,
    ImagineJob,
    RemixJob,
    Service,
    UnsupportedRequest,
)
from imagineer.service.jobs import PinnedStyle, from_payload
from imagineer.service.styles import StyleRefused, StyleResolver, StyleSources, load_styles
from imagineer.world.render import render
from imagineer.world.scene import Scene
from test_service import make_runtime, quiet_settings

REMOTE = StyleSources(paths=False)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    counter = itertools.count(1000, 10)
    with make_runtime(quiet_settings(tmp_path)) as runtime:
        yield Service(runtime, seed_source=lambda: next(counter))


def scene_png(path: Path, style: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render(Scene(style=style), 64, 64)).save(path)
    return path


def run_one(service: Service, job_id: str) -> tuple[JobState, str | None, dict | None]:
    service.worker("w").run_once()
    job = service.job(job_id)
    return job.state, job.error, job.result


def test_a_relative_reference_is_pinned_where_it_was_queued(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = scene_png(tmp_path / "here" / "style.png", "noir")
    scene_png(tmp_path / "elsewhere" / "style.png", "neon")  # the worker's folder has another
    monkeypatch.chdir(here.parent)
    job = service.submit(ImagineJob("a red bird --sref style.png --seed 4", steps=1))
    request = from_payload(job.kind, job.payload)
    assert isinstance(request, ImagineJob) and request.sref is not None
    (pin,) = request.sref
    assert pin == PinnedStyle("style.png", str(here.resolve()), content_hash(here.read_bytes()))
    monkeypatch.chdir(tmp_path / "elsewhere")
    state, error, result = run_one(service, job.id)
    assert state is JobState.DONE, error
    recipe = GenerationResult.from_dict(result or {}).images[0].recipe
    assert recipe.extras["sref"] == pin.sha256  # the file queued, not the worker's style.png


def test_a_reference_changed_after_queueing_fails_with_the_reason(
    service: Service, tmp_path: Path
) -> None:
    style = scene_png(tmp_path / "style.png", "noir")
    job = service.submit(ImagineJob(f"a red bird --sref {style}", steps=1))
    scene_png(style, "pastel")
    state, error, _ = run_one(service, job.id)
    assert state is not JobState.DONE
    assert error is not None and "changed after the job was queued" in error
    forged = ImagineJob(f"a red bird --sref {style}", steps=1, sref=())  # pinned: nothing
    with pytest.raises(UnsupportedRequest, match="not resolved when the job was queued"):
        service.perform(forged)


def test_a_remote_caller_names_no_path_and_nothing_is_read(
    service: Service, tmp_path: Path
) -> None:
    real = scene_png(tmp_path / "style.png", "noir")
    for ref in (str(real), "../style.png", "~/style.png", "/no/such/file.png"):
        with pytest.raises(StyleRefused, match=r"POST /v1/uploads.*--sref upload:ID") as err:
            service.submit(ImagineJob(f"a cat --sref {ref}"), sources=REMOTE)
        assert "no such" not in str(err.value)  # the same answer whether the file exists
    assert service.jobs() == []
    uploads = tmp_path / "uploads"
    own = scene_png(uploads / ("ab" * 12 + ".png"), "noir")
    mine = StyleSources(paths=False, uploads=uploads)
    job = service.submit(ImagineJob("a cat --sref upload:" + "ab" * 12), sources=mine)
    assert job.payload["sref"][0]["path"] == str(own)
    with pytest.raises(StyleRefused, match="no upload with that id"):
        service.submit(ImagineJob("a cat --sref upload:" + "cd" * 12), sources=mine)


def test_job_references_name_only_the_callers_finished_images(
    service: Service, tmp_path: Path
) -> None:
    first = service.submit(ImagineJob("a red bird --seed 3", steps=1), user="ann")
    assert run_one(service, first.id)[0] is JobState.DONE
    image = GenerationResult.from_dict(service.job(first.id).result or {}).images[2].path
    job = service.submit(ImagineJob(f"a cat --sref job:{first.id}/2", steps=1), user="ann")
    assert job.payload["sref"][0]["path"] == str(image)
    state, error, result = run_one(service, job.id)
    assert state is JobState.DONE, error
    recipe = GenerationResult.from_dict(result or {}).images[0].recipe
    assert recipe.extras["sref"] == content_hash(image.read_bytes())
    for user in ("bob", "local"):  # another user's job reads as no job at all
        with pytest.raises(StyleRefused, match=f"you have no job '{first.id}'"):
            service.submit(ImagineJob(f"a cat --sref job:{first.id}"), user=user)
    with pytest.raises(StyleRefused, match="no job 'nope'"):
        service.submit(ImagineJob("a cat --sref job:nope/0"), user="ann")
    with pytest.raises(StyleRefused, match="has images 0 to 3"):
        service.submit(ImagineJob(f"a cat --sref job:{first.id}/4"), user="ann")
    queued = service.submit(ImagineJob("a dog", steps=1), user="ann")
    with pytest.raises(StyleRefused, match="is queued: wait until it is done"):
        service.submit(ImagineJob(f"a cat --sref job:{queued.id}"), user="ann")


def test_a_recipe_remixed_remotely_may_not_name_a_path(service: Service, tmp_path: Path) -> None:
    style = scene_png(tmp_path / "style.png", "noir")
    made = service.imagine(f"a red bird --sref {style} --seed 4", steps=1)
    with pytest.raises(StyleRefused, match="reads no file paths"):
        service.submit(RemixJob(str(made.images[0].path)), sources=REMOTE)
    job = service.submit(RemixJob(str(made.images[0].path)))  # locally, its recipe's file
    assert job.payload["sref"][0]["sha256"] == content_hash(style.read_bytes())


def test_the_prompt_language_takes_named_images() -> None:
    refs = parse("a cat --sref job:Ab_9-x/3::2 upload:" + "0f" * 12).params.sref
    assert [(r.text, r.weight) for r in refs] == [("job:Ab_9-x/3", 2.0), ("upload:" + "0f" * 12, 1)]
    for bad in ("job:", "job:a/b", "upload:../x", "jobs:abc"):
        with pytest.raises(PromptError, match="upload:ID, job:ID/INDEX"):
            parse(f"a cat --sref {bad}")
    with pytest.raises(StyleRefused, match="uploads are images sent to an imagineer server"):
        load_styles(parse("a cat --sref upload:abc"), resolver=StyleResolver())
