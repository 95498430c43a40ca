"""HTTP API tests through FastAPI's TestClient, on the tiny random-weight engine of test_service."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from engine_wrappers import WrappedEngine
from imagineer.cli import app as cli_app
from imagineer.engines.base import GenerationInput, GenerationOutput, RunControl
from imagineer.jobs import JobState
from imagineer.media.images import read_recipe
from imagineer.runtime import Runtime
from imagineer.server.keys import KeyStore
from imagineer.server.limits import RateLimiter, quota_wait_s
from imagineer.server.openai_compat import aspect_for_size, generation_prompt
from imagineer.server.options import ServerOptions
from imagineer.server.schemas import ImageGenerationRequest
from imagineer.server.worker import SHUTDOWN_REASON
from server_apps import LOCAL, build_app
from test_service import SmallEngine, tiny_embedded

Make = Callable[..., tuple[FastAPI, Runtime]]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Make]:
    """Build an app (worker off unless asked) over a runtime in tmp_path; closed afterwards."""
    runtimes: list[Runtime] = []

    def make(settings: dict[str, Any] | None = None, **changes: Any) -> tuple[FastAPI, Runtime]:
        app, runtime, _ = build_app(tmp_path, SmallEngine(tiny_embedded()), settings, **changes)
        runtimes.append(runtime)
        return app, runtime

    yield make
    for runtime in runtimes:
        runtime.close()


@pytest.fixture
def idle(make_app: Make) -> Iterator[TestClient]:
    """A client of an app with no worker: jobs stay queued."""
    app, _ = make_app()
    with TestClient(app, client=LOCAL) as client:
        yield client


def new_key(client: TestClient, user: str) -> dict[str, str]:
    keys: KeyStore = client.app.state.server.keys  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {keys.create(user).secret}"}


def wait_until(client: TestClient, job_id: str, states: Sequence[str], **kw: Any) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", **kw).json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {states}: {job}")


def events(client: TestClient, job_id: str) -> list[tuple[str, dict]]:
    """The job's event stream, read to its end, as (event, data) pairs."""
    found = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                found.append((name, json.loads(line.removeprefix("data: "))))
    return found


# --- pure parts -------------------------------------------------------------------------------


def test_token_bucket_allows_the_burst_then_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.wait_s("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_s("k") == pytest.approx(0.5)
    assert limiter.wait_s("other") == 0.0  # buckets are per key
    now[0] = 0.6
    assert limiter.wait_s("k") == 0.0


def test_quota_waits_until_midnight_utc() -> None:
    now = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    assert quota_wait_s(9, 1, 10, now) == 0.0
    assert quota_wait_s(10, 1, 10, now) == pytest.approx(3600)
    assert quota_wait_s(10**6, 1, None, now) == 0.0


def test_openai_size_quality_style_and_extras_become_prompt_parameters() -> None:
    assert aspect_for_size("1792x1024") == "7:4"
    assert aspect_for_size("512x512") == "1:1"
    body = ImageGenerationRequest(
        prompt="a red fox",
        size="1536x1024",
        quality="hd",
        style="natural",
        seed=10,
        negative_prompt="dog, cat",
    )
    assert generation_prompt(body, 0) == "a red fox --ar 3:2 --q 2 --raw --no dog, cat --seed 10"
    assert generation_prompt(body, 2).endswith("--seed 18")  # grids continue the seeds


def test_server_options_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        ServerOptions(rate_per_s=0)
    with pytest.raises(ValueError, match="jobs_per_day"):
        ServerOptions(jobs_per_day=0)


# --- jobs over REST ----------------------------------------------------------------------------


def test_health_and_models(idle: TestClient) -> None:
    assert idle.get("/healthz").json() == {"status": "ok", "worker": "off"}
    models = idle.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["embedded", "embedded-video"]
    assert models["data"][0]["default"] is True


def test_text_prompt_is_queued_and_pages_newest_first(idle: TestClient) -> None:
    ids = []
    for word in ("fox", "owl", "cat"):
        response = idle.post(
            "/v1/jobs", content=f"a {word} --ar 16:9", headers={"content-type": "text/plain"}
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert (job["state"], job["kind"], job["prompt"]) == (
            "queued",
            "imagine",
            f"a {word} --ar 16:9",
        )
        ids.append(job["id"])
    first = idle.get("/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in first["data"]] == ids[:0:-1]
    rest = idle.get("/v1/jobs", params={"limit": 2, "before": first["next_cursor"]}).json()
    assert [j["id"] for j in rest["data"]] == ids[:1]
    assert rest["next_cursor"] is None
    assert idle.get(f"/v1/jobs/{ids[0]}").json()["prompt"] == "a fox --ar 16:9"
    assert "path" not in json.dumps(first)  # server paths never leave the server


def test_idempotency_key_gives_back_the_first_job(idle: TestClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    a = idle.post("/v1/jobs", json={"prompt": "a fox"}, headers=headers).json()
    b = idle.post("/v1/jobs", json={"prompt": "a fox"}, headers=headers).json()
    c = idle.post("/v1/jobs", json={"prompt": "a fox"}).json()
    assert a["id"] == b["id"] != c["id"]


def test_prompt_error_is_422_with_the_caret_and_the_span(idle: TestClient) -> None:
    response = idle.post("/v1/jobs", json={"prompt": "a cat --stylise 200"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "prompt_error"
    assert error["span"] == [6, 15] and error["token"] == "--stylise"
    assert error["message"].startswith("a cat --stylise 200\n      ^^^^^^^^^\n")
    assert "did you mean --stylize" in error["message"]


def test_refused_prompt_is_403_with_category_and_reason(idle: TestClient) -> None:
    response = idle.post("/v1/jobs", json={"prompt": "a zorblax in the snow"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "content_policy_violation"
    assert error["category"] and error["reason"]
    assert idle.get("/v1/jobs").json()["data"] == []


def test_bad_bodies_are_refused(idle: TestClient) -> None:
    assert idle.post("/v1/jobs", json={"prompt": "a fox", "colour": "red"}).status_code == 422
    assert idle.post("/v1/jobs", json={"prompt": "   "}).status_code == 422
    response = idle.post("/v1/jobs", content=b"a fox", headers={"content-type": "image/png"})
    assert response.status_code == 415


def test_cancel_delete_and_unknown_ids(idle: TestClient) -> None:
    job = idle.post("/v1/jobs", json={"prompt": "a fox"}).json()
    assert idle.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    assert idle.delete(f"/v1/jobs/{job['id']}").status_code == 204
    for method, path in (
        ("GET", f"/v1/jobs/{job['id']}"),
        ("POST", "/v1/jobs/nope/cancel"),
        ("DELETE", "/v1/jobs/nope"),
        ("GET", "/v1/jobs/nope/events"),
        ("GET", "/v1/media/nope/x.png"),
    ):
        response = idle.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["type"] == "not_found_error"


def test_vary_of_an_unfinished_job_is_409(idle: TestClient) -> None:
    job = idle.post("/v1/jobs", json={"prompt": "a fox"}).json()
    response = idle.post(f"/v1/jobs/{job['id']}/vary", json={"image": 0})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_not_done"


# --- keys, local mode, limits --------------------------------------------------------------------


def test_keys_keep_users_apart(idle: TestClient) -> None:
    alice, bob = new_key(idle, "alice"), new_key(idle, "bob")
    assert idle.get("/v1/jobs").status_code == 401  # a key exists: local mode is over
    bad = idle.get("/v1/jobs", headers={"Authorization": "Bearer imk_nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    job = idle.post("/v1/jobs", json={"prompt": "a fox"}, headers=alice).json()
    bob_key = {"X-API-Key": bob["Authorization"].removeprefix("Bearer ")}
    assert idle.get(f"/v1/jobs/{job['id']}", headers=bob_key).status_code == 404
    assert idle.post(f"/v1/jobs/{job['id']}/cancel", headers=bob_key).status_code == 404
    assert idle.delete(f"/v1/jobs/{job['id']}", headers=bob_key).status_code == 404
    assert idle.get("/v1/jobs", headers=bob_key).json()["data"] == []
    assert idle.get(f"/v1/jobs/{job['id']}", headers=alice).status_code == 200
    keys: KeyStore = idle.app.state.server.keys  # type: ignore[attr-defined]
    keys.revoke(keys.list(user_id="alice")[0].id)
    assert idle.get("/v1/jobs", headers=alice).status_code == 401


def test_local_mode_needs_a_loopback_bind_and_a_local_client(make_app: Make) -> None:
    app, _ = make_app(host="0.0.0.0")
    with TestClient(app, client=LOCAL) as client:
        response = client.get("/v1/jobs")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "missing_api_key"
    app, _ = make_app()
    with TestClient(app, client=("192.0.2.7", 1234)) as client:
        assert client.get("/v1/jobs").status_code == 401
    with TestClient(app, client=LOCAL) as client:
        assert client.get("/v1/jobs").status_code == 200


def test_rate_limit_answers_429_with_retry_after(make_app: Make) -> None:
    app, _ = make_app(rate_per_s=0.01, rate_burst=2)
    with TestClient(app, client=LOCAL) as client:
        assert [client.get("/v1/jobs").status_code for _ in range(2)] == [200, 200]
        response = client.get("/v1/jobs")
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["type"] == "rate_limit_error"


def test_daily_quota_and_step_limit(make_app: Make) -> None:
    app, _ = make_app(jobs_per_day=1, max_steps=5)
    with TestClient(app, client=LOCAL) as client:
        assert client.post("/v1/jobs", json={"prompt": "a fox", "steps": 6}).status_code == 422
        assert client.post("/v1/jobs", json={"prompt": "a fox"}).status_code == 202
        response = client.post("/v1/jobs", json={"prompt": "an owl"})
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "quota_exceeded"
        assert 0 < int(response.headers["Retry-After"]) <= 86400


def test_keys_cli_shows_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    made = runner.invoke(cli_app, [*data, "keys", "create", "--user", "alice", "--json"])
    assert made.exit_code == 0, made.output
    key = json.loads(made.stdout)
    assert key["key"].startswith("imk_") and key["user"] == "alice"
    listed = runner.invoke(cli_app, [*data, "keys", "list", "--json"])
    assert [k["id"] for k in json.loads(listed.stdout)] == [key["id"]]
    assert key["key"] not in listed.stdout
    assert key["key"].encode() not in (tmp_path / "data" / "jobs.sqlite3").read_bytes()
    revoked = runner.invoke(cli_app, [*data, "keys", "revoke", key["id"]])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    missing = runner.invoke(cli_app, [*data, "keys", "revoke", "nope"])
    assert missing.exit_code == 1


# --- OpenAI-shaped errors (no generation) ---------------------------------------------------------


def test_openai_routes_answer_errors_in_openai_shape(idle: TestClient) -> None:
    cases = {
        "size": {"prompt": "a fox", "size": "big"},
        "model": {"prompt": "a fox", "model": "dall-e-3"},
        "colour": {"prompt": "a fox", "colour": "red"},
        "n": {"prompt": "a fox", "n": 11},
    }
    for param, body in cases.items():
        response = idle.post("/v1/images/generations", json=body)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert param in (error["param"] or ""), error
        assert error["type"] == "invalid_request_error"
    refused = idle.post("/v1/images/generations", json={"prompt": "a zorblax"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "content_policy_violation"
    upload = {"image": ("x.png", b"not an image", "image/png")}
    bad = idle.post("/v1/images/variations", files=upload)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "image"


# --- end to end with the in-process worker --------------------------------------------------------


def test_job_runs_streams_serves_ranges_and_derives(make_app: Make, tmp_path: Path) -> None:
    app, _ = make_app(worker=True)
    with TestClient(app, client=LOCAL) as client:
        assert client.get("/healthz").json()["worker"] == "running"
        job = client.post("/v1/jobs", json={"prompt": "a red ball --seed 5", "steps": 2}).json()
        stream = events(client, job["id"])
        assert stream[0][0] == "state"
        assert stream[-1][0] == "end" and stream[-1][1]["state"] == "done", stream[-1]
        done = stream[-1][1]
        images = done["result"]["images"]
        assert len(images) == 4 and [i["seed"] for i in images] == [5, 6, 7, 8]
        url = images[0]["url"]
        whole = client.get(url)
        assert whole.status_code == 200 and whole.headers["content-type"] == "image/png"
        part = client.get(url, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206
        assert part.content == whole.content[:100]
        assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"
        saved = tmp_path / "got.png"
        saved.write_bytes(whole.content)
        recipe = read_recipe(saved)
        assert recipe is not None and recipe.seed == 5
        _derive(client, job["id"], images[0])
        verdict = client.post("/v1/verify", files={"file": ("mine.png", whole.content)}).json()
        assert verdict["path"] == "mine.png" and json.loads(verdict["recipe_json"])["seed"] == 5
        bob = new_key(client, "bob")  # ends local mode
        assert client.get(url, headers=bob).status_code == 404
        assert client.get(url).status_code == 401
        assert client.delete(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404


def _derive(client: TestClient, job_id: str, image: dict) -> None:
    """Vary and upscale one image of a finished job, as new jobs."""
    vary = client.post(f"/v1/jobs/{job_id}/vary", json={"image": 0, "steps": 2})
    assert vary.status_code == 202, vary.text
    up = client.post(f"/v1/jobs/{job_id}/upscale", json={"image": 0, "factor": 2})
    assert up.status_code == 202, up.text
    varied = wait_until(client, vary.json()["id"], ["done", "failed"])
    assert varied["state"] == "done", varied["error"]
    assert len(varied["result"]["images"]) == 4
    upscaled = wait_until(client, up.json()["id"], ["done", "failed"])
    assert upscaled["state"] == "done", upscaled["error"]
    big = upscaled["result"]["images"][0]
    assert (big["width"], big["height"]) == (2 * image["width"], 2 * image["height"])
    with Image.open(io.BytesIO(client.get(big["url"]).content)) as png:
        assert png.size == (big["width"], big["height"])


class GatedEngine(WrappedEngine):
    """The small engine, held at its first call until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(SmallEngine(tiny_embedded()))
        self.gate = threading.Event()
        self.entered = threading.Event()

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        self.entered.set()
        self.gate.wait(30)
        return super().generate(batch, control)


def test_shutdown_requeues_the_job_it_could_not_finish(make_app: Make) -> None:
    app, runtime = make_app(worker=True, shutdown_grace_s=0.2)
    engine = GatedEngine()
    runtime.add_engine(engine, name="embedded")
    state = app.state.server
    with TestClient(app, client=LOCAL) as client:
        job = client.post("/v1/jobs", json={"prompt": "a fox", "steps": 2}).json()
        assert engine.entered.wait(30)
        busy = client.delete(f"/v1/jobs/{job['id']}")
        assert busy.status_code == 409 and busy.json()["error"]["state"] == "running"
    after = runtime.store.get(job["id"])
    assert after.state is JobState.QUEUED and after.error == SHUTDOWN_REASON
    engine.gate.set()
    assert state.worker.join(30)  # the old attempt stops on its own; its outcome is dropped
    assert runtime.store.get(job["id"]).state is JobState.QUEUED


def test_a_queued_job_starts_at_once_however_rarely_the_worker_polls(make_app: Make) -> None:
    app, runtime = make_app(worker=True, poll_interval_s=60.0, shutdown_grace_s=5.0)
    engine = GatedEngine()
    runtime.add_engine(engine, name="embedded")
    with TestClient(app, client=LOCAL) as client:
        time.sleep(0.2)  # the worker found the queue empty: its next poll is a minute away
        client.post("/v1/jobs", json={"prompt": "a fox", "steps": 2}).raise_for_status()
        assert engine.entered.wait(10), "the submit did not wake the worker"
        engine.gate.set()


def test_an_event_stream_ends_when_the_job_does_not_at_its_next_poll(make_app: Make) -> None:
    app, runtime = make_app(worker=True, events_poll_s=120.0)
    engine = GatedEngine()
    runtime.add_engine(engine, name="embedded")
    with TestClient(app, client=LOCAL) as client:
        job = client.post("/v1/jobs", json={"prompt": "a fox", "steps": 2}).json()
        assert engine.entered.wait(10)
        threading.Timer(0.2, engine.gate.set).start()
        started = time.monotonic()
        stream = events(client, job["id"])
        assert stream[-1][0] == "end" and stream[-1][1]["state"] == "done", stream[-1]
        assert time.monotonic() - started < 45.0  # the worker's report woke the stream


def test_a_stream_of_a_queued_job_reads_the_store_about_once_a_second(
    idle: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = idle.post("/v1/jobs", json={"prompt": "a fox"}).json()
    store = idle.app.state.server.store  # type: ignore[attr-defined]
    reads: list[float] = []
    real_get = store.get

    def counted(job_id: str, **kw: Any) -> Any:
        reads.append(time.monotonic())
        return real_get(job_id, **kw)

    monkeypatch.setattr(store, "get", counted)
    threading.Timer(2.5, lambda: store.cancel(job["id"])).start()  # the cancel wakes it
    stream = events(idle, job["id"])
    assert stream[-1][0] == "end" and stream[-1][1]["state"] == "cancelled"
    assert 2 <= len(reads) <= 5, reads  # not every events_poll_s (0.05 s here): 50 reads


def test_media_links_expire(make_app: Make) -> None:
    app, _ = make_app()
    signer = app.state.server.signer
    past = int((datetime.now(UTC) - timedelta(seconds=1)).timestamp())
    with TestClient(app, client=LOCAL) as client:
        response = client.get(signer.signed_path("job", "a.png", past))
        assert response.status_code == 403


def test_a_media_signature_that_is_not_ascii_is_refused_not_a_crash(make_app: Make) -> None:
    app, _ = make_app()
    future = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    with TestClient(app, client=LOCAL) as client:
        response = client.get(
            "/v1/media/job/a.png", params={"expires": future, "signature": "é" * 64}
        )
        assert response.status_code == 403
