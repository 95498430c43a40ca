"""--sref over HTTP: a key holder names only their own uploads (POST /v1/uploads) and images of
their own jobs; any file path is refused (422, 400 on the OpenAI routes) unless the server is in
local single-user mode; the studio's prompt box goes through the same POST /v1/jobs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from imagineer.jobs import JobState
from imagineer.runtime import Runtime
from imagineer.server.app import create_app
from imagineer.server.options import ServerOptions
from imagineer.service import Service
from imagineer.world.render import render
from imagineer.world.scene import Scene
from test_service import DENY_POLICY, make_runtime, quiet_settings

LOCAL = ("127.0.0.1", 50000)  # a client on this machine: what keyless local mode needs
HINT = "upload the image (POST /v1/uploads) and write --sref upload:ID"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FastAPI, Runtime]]:
    """An app with no worker thread (tests run queued jobs with run_once)."""
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_POLICY)
    settings = quiet_settings(tmp_path, policy_file=policy)
    with make_runtime(settings) as runtime:
        options = ServerOptions(worker=False, sync_timeout_s=5)  # nothing runs: fail fast
        yield create_app(settings, runtime=runtime, options=options), runtime


def new_key(client: TestClient, user: str) -> dict[str, str]:
    keys = client.app.state.server.keys  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {keys.create(user).secret}"}


def png_bytes(style: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(render(Scene(style=style), 64, 64)).save(out, format="PNG")
    return out.getvalue()


def service_of(app: FastAPI) -> Service:
    service: Service = app.state.server.service
    return service


def run_queued(app: FastAPI) -> None:
    job = service_of(app).worker("test").run_once()
    assert job is not None and job.state is JobState.DONE, job


def test_a_key_holder_names_no_path_on_the_server(
    served: tuple[FastAPI, Runtime], tmp_path: Path
) -> None:
    app, _ = served
    style = tmp_path / "style.png"
    style.write_bytes(png_bytes("noir"))
    with TestClient(app, client=LOCAL) as client:
        ann = new_key(client, "ann")
        for ref in (str(style), "style.png", "/etc/no-such.png"):
            answer = client.post("/v1/jobs", json={"prompt": f"a cat --sref {ref}"}, headers=ann)
            assert answer.status_code == 422, answer.text
            error = answer.json()["error"]
            assert error["code"] == "sref_refused" and HINT in error["message"], error
            assert "no such" not in error["message"]  # existing and missing files read alike
        openai = client.post(
            "/v1/images/generations", json={"prompt": f"a cat --sref {style}"}, headers=ann
        )
        assert openai.status_code == 400 and openai.json()["error"]["code"] == "sref_refused"
        edit = client.post(
            "/v1/images/edits",
            files={"image": ("a.png", png_bytes("pastel"), "image/png")},
            data={"prompt": f"a cat --sref {style}"},
            headers=ann,
        )
        assert edit.status_code == 400 and edit.json()["error"]["code"] == "sref_refused"
        assert client.get("/v1/jobs", headers=ann).json()["data"] == []


def test_an_image_whose_recipe_names_a_path_is_refused_remotely(
    served: tuple[FastAPI, Runtime], tmp_path: Path
) -> None:
    """A variation without a prompt takes the uploaded image's recipe, which its sender wrote."""
    app, _ = served
    style = tmp_path / "secret.png"
    style.write_bytes(png_bytes("noir"))
    made = service_of(app).imagine(f"a red bird --sref {style}", steps=1)
    with TestClient(app, client=LOCAL) as client:
        ann = new_key(client, "ann")
        answer = client.post(
            "/v1/images/variations",
            files={"image": ("a.png", made.images[0].path.read_bytes(), "image/png")},
            headers=ann,
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "sref_refused"


def test_uploads_and_job_images_are_their_owners_alone(served: tuple[FastAPI, Runtime]) -> None:
    app, _ = served
    with TestClient(app, client=LOCAL) as client:
        ann, bob = new_key(client, "ann"), new_key(client, "bob")
        files = {"image": ("style.png", png_bytes("noir"), "image/png")}
        upload = client.post("/v1/uploads", files=files, headers=ann)
        assert upload.status_code == 201, upload.text
        body = upload.json()
        assert body["sref"] == f"upload:{body['id']}" and (body["width"], body["height"]) == (
            64,
            64,
        )
        prompt = f"a red bird --sref {body['sref']} --seed 2"
        theirs = client.post("/v1/jobs", json={"prompt": prompt, "steps": 1}, headers=bob)
        assert theirs.status_code == 422 and "no upload with that id" in theirs.text
        job = client.post("/v1/jobs", json={"prompt": prompt, "steps": 1}, headers=ann)
        assert job.status_code == 202, job.text
        assert str(app.state.server.media_dir) not in job.text  # no server paths leave
        run_queued(app)
        done = client.get(f"/v1/jobs/{job.json()['id']}", headers=ann).json()
        assert done["state"] == "done"
        ref = f"a cat --sref job:{done['id']}/1"
        theirs = client.post("/v1/jobs", json={"prompt": ref, "steps": 1}, headers=bob)
        assert theirs.status_code == 422, theirs.text
        assert theirs.json()["error"]["message"].endswith(f"you have no job {done['id']!r}")
        again = client.post("/v1/jobs", json={"prompt": ref, "steps": 1}, headers=ann)
        assert again.status_code == 202, again.text
        bad = client.post(
            "/v1/uploads", files={"image": ("x.png", b"not an image", "image/png")}, headers=ann
        )
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "image"


def test_local_single_user_mode_reads_the_users_files(
    served: tuple[FastAPI, Runtime], tmp_path: Path
) -> None:
    app, runtime = served
    style = tmp_path / "style.png"
    style.write_bytes(png_bytes("noir"))
    with TestClient(app, client=LOCAL) as client:  # no key exists: local mode
        answer = client.post(
            "/v1/jobs", content=f"a cat --sref {style}", headers={"content-type": "text/plain"}
        )
        assert answer.status_code == 202, answer.text
        (pin,) = runtime.store.get(answer.json()["id"]).payload["sref"]
        assert pin["path"] == str(style.resolve())
        key = new_key(client, "ann")  # the first key ends local mode: paths are refused
        answer = client.post("/v1/jobs", json={"prompt": f"a cat --sref {style}"}, headers=key)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "sref_refused"
