"""/v1/uploads: each user lists and deletes only their own uploads, ids are checked before any
path is made of them, and an upload that an unfinished job pinned as a --sref is kept (409)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from imagineer.jobs import JobState
from imagineer.runtime import Runtime
from imagineer.server.media import user_folder
from imagineer.server.routes import uploads as uploads_route
from server_apps import LOCAL, build_app
from test_server_sref import new_key, png_bytes
from test_service import SmallEngine, tiny_embedded

MISSING = "0123456789abcdef01234567"  # an upload id no one has


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FastAPI, Runtime, TestClient]]:
    """An app with no worker: queued jobs stay queued until a test moves them on."""
    app, runtime, _ = build_app(tmp_path, SmallEngine(tiny_embedded()))
    with runtime, TestClient(app, client=LOCAL) as client:
        yield app, runtime, client


def upload(client: TestClient, headers: dict[str, str], style: str = "noir") -> dict:
    files = {"image": ("style.png", png_bytes(style), "image/png")}
    answer = client.post("/v1/uploads", files=files, headers=headers)
    assert answer.status_code == 201, answer.text
    body: dict = answer.json()
    return body


def upload_file(app: FastAPI, user: str, upload_id: str) -> Path:
    return user_folder(app.state.server.media_dir, user) / "uploads" / f"{upload_id}.png"


def listed(client: TestClient, headers: dict[str, str]) -> list[str]:
    answer = client.get("/v1/uploads", headers=headers)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["data"]]


def queue(client: TestClient, headers: dict[str, str], ref: str) -> str:
    answer = client.post("/v1/jobs", json={"prompt": f"a red bird --sref {ref}"}, headers=headers)
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def test_each_user_lists_their_own_uploads_newest_first(
    served: tuple[FastAPI, Runtime, TestClient],
) -> None:
    app, _, client = served
    ann, bob = new_key(client, "ann"), new_key(client, "bob")
    old, new = upload(client, ann, "noir"), upload(client, ann, "pastel")
    theirs = upload(client, bob)
    hour_ago = time.time() - 3600
    os.utime(upload_file(app, "ann", old["id"]), (hour_ago, hour_ago))

    answer = client.get("/v1/uploads", headers=ann).json()["data"]
    assert [item["id"] for item in answer] == [new["id"], old["id"]]
    first = answer[0]
    assert first["sref"] == f"upload:{new['id']}" and (first["width"], first["height"]) == (64, 64)
    assert first["bytes"] == len(png_bytes("pastel")) == new["bytes"]
    assert first["created_at"] == new["created_at"]
    assert abs(datetime.fromisoformat(answer[1]["created_at"]).timestamp() - hour_ago) < 1
    assert listed(client, bob) == [theirs["id"]]
    assert listed(client, new_key(client, "cat")) == []


def test_a_user_deletes_their_upload_and_no_one_elses(
    served: tuple[FastAPI, Runtime, TestClient],
) -> None:
    app, _, client = served
    ann, bob = new_key(client, "ann"), new_key(client, "bob")
    mine = upload(client, ann)
    path = upload_file(app, "ann", mine["id"])

    theirs = client.delete(f"/v1/uploads/{mine['id']}", headers=bob)
    missing = client.delete(f"/v1/uploads/{MISSING}", headers=bob)
    assert theirs.status_code == missing.status_code == 404, theirs.text
    # another user's upload reads exactly as one that does not exist
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "upload_not_found"
    assert theirs.text.replace(mine["id"], MISSING) == missing.text
    assert path.is_file() and listed(client, ann) == [mine["id"]]

    gone = client.delete(f"/v1/uploads/{mine['id']}", headers=ann)
    assert gone.status_code == 204 and gone.content == b""
    assert not path.exists() and listed(client, ann) == []
    again = client.delete(f"/v1/uploads/{mine['id']}", headers=ann)
    assert again.status_code == 404
    refused = client.post(
        "/v1/jobs", json={"prompt": f"a cat --sref {mine['sref']}"}, headers=ann
    ).json()["error"]
    assert refused["code"] == "sref_refused" and "no upload with that id" in refused["message"]


@pytest.mark.parametrize(
    "bad", ["..%2Fsecret", "secret", "0123456789ABCDEF01234567", f"{MISSING}.png", f"{MISSING}0"]
)
def test_only_upload_ids_reach_the_disk(
    served: tuple[FastAPI, Runtime, TestClient], bad: str
) -> None:
    app, _, client = served
    ann = new_key(client, "ann")
    upload(client, ann)
    folder = user_folder(app.state.server.media_dir, "ann")
    bait = [folder / "secret", folder / "uploads" / "secret", folder / "uploads" / f"{bad}.png"]
    for path in bait:
        path.write_bytes(png_bytes("noir"))
    answer = client.delete(f"/v1/uploads/{bad}", headers=ann)
    assert answer.status_code in (404, 422), answer.text
    assert "error" in answer.json()
    assert all(path.is_file() for path in bait)
    assert len(listed(client, ann)) == 1  # the bait files are not uploads either


def test_an_upload_pinned_by_an_unfinished_job_is_kept(
    served: tuple[FastAPI, Runtime, TestClient],
) -> None:
    app, runtime, client = served
    ann = new_key(client, "ann")
    mine = upload(client, ann)
    path = upload_file(app, "ann", mine["id"])
    queued = queue(client, ann, mine["sref"])

    answer = client.delete(f"/v1/uploads/{mine['id']}", headers=ann)
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "upload_in_use" and error["jobs"] == [queued]
    assert queued in error["message"] and "cancel" in error["message"]
    assert path.is_file()

    running = runtime.store.claim("test-worker")
    assert running is not None and running.id == queued
    second = queue(client, ann, mine["sref"])
    answer = client.delete(f"/v1/uploads/{mine['id']}", headers=ann)
    assert answer.status_code == 409 and answer.json()["error"]["jobs"] == [second, queued]
    assert path.is_file()

    assert client.post(f"/v1/jobs/{second}/cancel", headers=ann).json()["state"] == "cancelled"
    client.post(f"/v1/jobs/{queued}/cancel", headers=ann)
    runtime.store.mark_cancelled(queued, "test-worker")
    assert runtime.store.get(queued).state is JobState.CANCELLED
    assert client.delete(f"/v1/uploads/{mine['id']}", headers=ann).status_code == 204
    assert not path.exists()


def test_a_pin_by_path_is_found_past_the_first_page(
    served: tuple[FastAPI, Runtime, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In local mode a prompt may name the upload's file by its path: that pins it too; and
    the jobs are read page by page, so an old queued job is found behind newer ones."""
    app, _, client = served
    monkeypatch.setattr(uploads_route, "PAGE", 2)
    mine = upload(client, {})  # no key exists: local mode
    path = upload_file(app, "local", mine["id"])
    pinned = queue(client, {}, str(path))
    for _ in range(4):
        client.post("/v1/jobs", json={"prompt": "a blue whale"})
    answer = client.delete(f"/v1/uploads/{mine['id']}")
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["jobs"] == [pinned]
    assert path.is_file()


def test_the_routes_are_documented(served: tuple[FastAPI, Runtime, TestClient]) -> None:
    _, _, client = served
    paths = client.get("/openapi.json").json()["paths"]
    listing, delete = paths["/v1/uploads"]["get"], paths["/v1/uploads/{upload_id}"]["delete"]
    assert listing["summary"] == "List your uploads"
    assert (
        "UploadsPublic"
        in listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert {"204", "404", "409", "422"} <= set(delete["responses"])
    (param,) = delete["parameters"]
    assert param["schema"]["pattern"] == "^[0-9a-f]{24}$"
