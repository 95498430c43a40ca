"""Video jobs over HTTP: animate an image job's output or an upload, extend a clip, make a reel;
progress and a preview over SSE; the MP4, its recipe, poster and contact sheet served with
ranges; the same errors, keys, idempotency and quotas as image jobs (tiny engines, 128 px)."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from engine_wrappers import WrappedEngine
from imagineer.engines.base import GenerationInput, GenerationOutput, RunControl
from imagineer.media.video import read_video
from imagineer.runtime import EMBEDDED_VIDEO, Runtime
from imagineer.service import Service
from server_apps import LOCAL, build_app
from test_server import new_key, wait_until
from test_service import SmallEngine, tiny_embedded
from test_video_service import SmallVideo, picture

Make = Callable[..., tuple[FastAPI, Runtime]]


class GatedVideo(WrappedEngine):
    """The small video engine, held before each clip until the test opens the gate: a running
    job's preview is then surely on disk, whatever the machine's speed."""

    def __init__(self) -> None:
        super().__init__(SmallVideo())
        self.gate = threading.Event()

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        self.gate.wait(60)
        return super().generate(batch, control)


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Make]:
    """An app over the small image and video engines (worker off unless asked)."""
    runtimes: list[Runtime] = []

    def make(video: object | None = None, **changes: Any) -> tuple[FastAPI, Runtime]:
        app, runtime, _ = build_app(tmp_path, SmallEngine(tiny_embedded()), **changes)
        runtimes.append(runtime)
        runtime.add_engine(video or SmallVideo(), name=EMBEDDED_VIDEO)
        return app, runtime

    yield make
    for runtime in runtimes:
        runtime.close()


def read_stream(client: TestClient, job_id: str, on_event: Callable[[str, dict], None]) -> list:
    """Every (event, data) of the job's stream up to its end; on_event hears each as it comes."""
    found = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                found.append((name, data))
                on_event(name, data)
    return found


def test_animate_an_image_job_then_extend_the_clip(make_app: Make, tmp_path: Path) -> None:
    video = GatedVideo()
    app, _ = make_app(video, worker=True, watermark=True, sign=True)
    with TestClient(app, client=LOCAL) as client:
        image_job = client.post("/v1/jobs", json={"prompt": "a red ball --seed 3", "steps": 1})
        images = wait_until(client, image_job.json()["id"], ["done"])["result"]["images"]

        # 1. queue: 202 with the job; the same Idempotency-Key gives the same job
        body = {"image": 1, "motion": "high", "seconds": 1, "steps": 1}
        key = {"Idempotency-Key": "clip-1"}
        made = client.post(f"/v1/jobs/{image_job.json()['id']}/animate", json=body, headers=key)
        assert made.status_code == 202, made.text
        job = made.json()
        assert (job["kind"], job["motion"], job["seconds"], job["state"]) == (
            "animate",
            "high",
            1.0,
            "queued",
        )
        again = client.post(f"/v1/jobs/{image_job.json()['id']}/animate", json=body, headers=key)
        assert again.json()["id"] == job["id"]

        # 2. follow it: a preview of the image it starts on while it runs, then the end
        def open_gate(name: str, data: dict) -> None:
            if name == "preview":
                video.gate.set()

        stream = read_stream(client, job["id"], open_gate)
        previews = [data for name, data in stream if name == "preview"]
        assert previews and previews[0]["step"] == 0 and previews[0]["total"] == 1000
        png = previews[0]["image"].removeprefix("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(png))) as shown:
            assert shown.size == (images[1]["width"], images[1]["height"])
        states = [data for name, data in stream if name == "state"]
        assert states[-1]["state"] == "done" and states[-1]["fraction"] == 1.0
        end = stream[-1]
        assert end[0] == "end" and end[1]["state"] == "done", end[1]["error"]

        # 3. the job: an MP4 labelled as the CLI labels it, its recipe, poster and sheet
        result = client.get(f"/v1/jobs/{job['id']}").json()["result"]
        (clip,) = result["videos"]
        assert (clip["format"], clip["frame_count"], clip["fps"], clip["seconds"]) == (
            "mp4",
            24,
            24,
            1.0,
        )
        assert clip["signed"] and clip["watermarked"] and clip["prompt"].startswith("a red ball")
        whole = client.get(clip["url"])
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        part = client.get(clip["url"], headers={"Range": "bytes=100-299"})
        assert part.status_code == 206 and part.content == whole.content[100:300]
        assert part.headers["content-range"] == f"bytes 100-299/{len(whole.content)}"
        saved = tmp_path / "clip.mp4"
        saved.write_bytes(whole.content)
        assert read_video(saved).frame_count == 24
        recipe = client.get(clip["recipe"]["url"]).json()
        assert recipe["kind"] == "animate" and recipe["extras"]["motion"] == "high"
        for still in (result["poster"], result["contact_sheet"]):
            with Image.open(io.BytesIO(client.get(still["url"]).content)) as picture_file:
                assert picture_file.format == "PNG"
        verdict = client.post("/v1/verify", files={"file": ("clip.mp4", whole.content)}).json()
        assert verdict["finding"] == "manifest_valid", verdict["summary"]

        both = {"loop": True, "end": {"job": image_job.json()["id"], "image": 2}}
        conflict = client.post(f"/v1/jobs/{image_job.json()['id']}/animate", json=both)
        assert conflict.status_code == 422 and "conflict" in conflict.json()["error"]["message"]

        # 4. extend it: a new job, one second longer
        longer = client.post(f"/v1/jobs/{job['id']}/extend", json={"seconds": 1, "steps": 1})
        assert longer.status_code == 202, longer.text
        extended = wait_until(client, longer.json()["id"], ["done", "failed"])
        assert extended["state"] == "done", extended["error"]
        assert extended["result"]["videos"][0]["frame_count"] == 48
        # a clip is not an image to vary or animate; an image is not a clip to extend
        vary = client.post(f"/v1/jobs/{job['id']}/vary", json={"image": 0})
        assert vary.status_code == 422 and "made a clip" in vary.json()["error"]["message"]
        bad = client.post(f"/v1/jobs/{image_job.json()['id']}/extend", json={})
        assert bad.status_code == 422 and "not a clip" in bad.json()["error"]["message"]

        # 5. another user sees none of it; deleting the job deletes its files
        bob = new_key(client, "bob")  # ends local mode
        assert client.get(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
        assert client.get(clip["url"], headers=bob).status_code == 404
        other = client.post(f"/v1/jobs/{job['id']}/extend", json={}, headers=bob)
        assert other.status_code == 404


def test_a_reel_job_makes_each_format_asked_for(make_app: Make) -> None:
    app, _ = make_app(worker=True)
    with TestClient(app, client=LOCAL) as client:
        body = {"prompt": "rolling hills at noon --seed 9", "seconds": 1, "formats": ["mp4", "gif"]}
        made = client.post("/v1/videos/reel", json={**body, "steps": 1})
        assert made.status_code == 202, made.text
        assert made.json()["kind"] == "reel" and made.json()["prompt"] == body["prompt"]
        done = wait_until(client, made.json()["id"], ["done", "failed"])
        assert done["state"] == "done", done["error"]
        mp4, gif = done["result"]["videos"]
        assert (mp4["format"], gif["format"], mp4["frame_count"], mp4["seed"]) == (
            "mp4",
            "gif",
            24,
            9,
        )
        assert client.get(gif["url"]).headers["content-type"] == "image/gif"
        found = client.get("/v1/jobs", params={"q": "hills reel"}).json()["data"]
        assert [job["id"] for job in found] == [done["id"]]


def test_video_routes_refuse_like_the_image_routes(make_app: Make, tmp_path: Path) -> None:
    app, _ = make_app(jobs_per_day=3, max_steps=5)
    with TestClient(app, client=LOCAL) as client:
        reel = "/v1/videos/reel"
        refused = client.post(reel, json={"prompt": "a zorblax over the sea"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "content_policy_violation"
        loop = client.post(reel, json={"prompt": "hills --loop"}).json()["error"]
        assert loop["code"] == "unsupported_request" and "animate" in loop["message"]
        for bad, param in [
            ({"prompt": "hills", "seconds": 0.5}, "seconds"),
            ({"prompt": "hills", "formats": ["avi"]}, "formats.0"),
            ({"prompt": "hills", "steps": 6}, "steps"),
            ({"prompt": "hills", "fps": 30}, "fps"),
        ]:
            answer = client.post(reel, json=bad)
            assert answer.status_code == 422 and answer.json()["error"]["param"] == param, bad

        queued = client.post("/v1/jobs", json={"prompt": "a red ball"}).json()
        waiting = client.post(f"/v1/jobs/{queued['id']}/animate", json={})
        assert waiting.status_code == 409 and waiting.json()["error"]["code"] == "job_not_done"
        assert client.post("/v1/jobs/nope/animate", json={}).status_code == 404

        # an upload: a picture without a recipe needs a prompt; a non-image is refused
        with picture(tmp_path).open("rb") as file:
            png = file.read()
        upload = "/v1/videos/animate"
        bare = client.post(upload, files={"image": ("p.png", png)})
        assert bare.status_code == 422 and "give a prompt" in bare.json()["error"]["message"]
        text = client.post(
            upload, files={"image": ("p.png", b"not an image")}, data={"prompt": "x"}
        )
        assert text.status_code == 422 and text.json()["error"]["param"] == "image"
        made = client.post(
            upload, files={"image": ("p.png", png)}, data={"prompt": "a city", "motion": "high"}
        )
        assert made.status_code == 202, made.text
        assert (made.json()["kind"], made.json()["motion"]) == ("animate", "high")

        # the daily quota counts video jobs with the rest (3: the imagine, the upload, one more)
        assert client.post(reel, json={"prompt": "hills"}).status_code == 202
        over = client.post(reel, json={"prompt": "hills"})
        assert over.status_code == 429 and over.json()["error"]["code"] == "quota_exceeded"
        assert "/v1/videos/reel" in client.get("/openapi.json").json()["paths"]


def test_an_uploaded_output_animates_with_its_recipe_prompt(make_app: Make, tmp_path: Path) -> None:
    app, runtime = make_app()
    output = Service(runtime).imagine("a blue whale --seed 2", out_dir=tmp_path / "o", steps=1)
    first = output.images[0].path
    with TestClient(app, client=LOCAL) as client:
        made = client.post("/v1/videos/animate", files={"image": ("whale.png", first.read_bytes())})
    assert made.status_code == 202, made.text
    assert made.json()["kind"] == "animate" and made.json()["prompt"] is None
    stored = runtime.store.get(made.json()["id"])
    assert Path(stored.payload["path"]).read_bytes() == first.read_bytes()
