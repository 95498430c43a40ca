"""DELETE /v1/jobs/{id} removes every file the job made, and no other job's: the media folder
listed before and after (tiny engines, 128 px)."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from imagineer.server.media import user_folder
from server_apps import LOCAL
from test_server import new_key, wait_until
from test_server_video import Make, make_app  # noqa: F401 - the fixture

STEPS = {"steps": 1}
CLIP_FILES = (
    ".mp4",
    ".mp4.json",
    "_poster.png",
    "_poster.png.json",
    "_sheet.png",
    "_sheet.png.json",
)


def listing(folder: Path) -> set[str]:
    """Every file under folder, as paths relative to it."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_delete_removes_a_jobs_outputs_sidecars_and_clip_stills_only(
    make_app: Make,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    app, _ = make_app(worker=True)
    media = tmp_path / "data" / "media"
    with TestClient(app, client=LOCAL) as client:
        alice, bob = new_key(client, "alice"), new_key(client, "bob")

        def done(answer: httpx.Response, key: dict[str, str]) -> dict:
            assert answer.status_code == 202, answer.text
            job = wait_until(client, answer.json()["id"], ["done", "failed"], headers=key)
            assert job["state"] == "done", job["error"]
            return job

        image = done(
            client.post("/v1/jobs", json={"prompt": "a red ball", **STEPS}, headers=alice), alice
        )
        theirs = done(
            client.post("/v1/jobs", json={"prompt": "a red ball", **STEPS}, headers=bob), bob
        )
        body = {"image": 0, "end": {"job": image["id"], "image": 1}, "seconds": 1, **STEPS}
        clip = done(client.post(f"/v1/jobs/{image['id']}/animate", json=body, headers=alice), alice)

        mine = user_folder(media, "alice").relative_to(media)
        before = listing(media)
        clip_files = {f for f in before if f.startswith(f"{mine}/{clip['id']}/")}
        image_files = {f for f in before if f.startswith(f"{mine}/{image['id']}/")}
        # the clip, its poster and contact sheet, each with its recipe sidecar; four images
        # and the grid, each with its sidecar
        kinds = [next((e for e in CLIP_FILES if f.endswith(e)), f) for f in clip_files]
        assert sorted(kinds) == sorted(CLIP_FILES), sorted(before)
        assert len(image_files) == 10 and all(
            f.endswith((".png", ".png.json")) for f in image_files
        )

        # 1. the clip: its six files go; the images it started and ended on stay
        assert client.delete(f"/v1/jobs/{clip['id']}", headers=alice).status_code == 204
        after_clip = listing(media)
        assert before - after_clip == clip_files, sorted(before - after_clip)
        assert not (media / mine / clip["id"]).exists()

        # 2. the images: all four, the grid and every sidecar; bob's identical prompt stays
        assert client.delete(f"/v1/jobs/{image['id']}", headers=alice).status_code == 204
        after_image = listing(media)
        assert after_clip - after_image == image_files, sorted(after_clip - after_image)
        assert listing(media / mine) == set()
        assert after_image == before - clip_files - image_files
        assert any(theirs["id"] in f for f in after_image)  # bob's job, untouched
        assert client.get(f"/v1/jobs/{theirs['id']}", headers=bob).json()["state"] == "done"


def test_delete_of_a_queued_job_removes_what_an_abandoned_attempt_left(
    make_app: Make,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    app, _ = make_app()  # no worker: the job stays queued, as after its worker was killed
    media = tmp_path / "data" / "media"
    with TestClient(app, client=LOCAL) as client:
        job = client.post("/v1/jobs", json={"prompt": "a red ball"}).json()
        other = client.post("/v1/jobs", json={"prompt": "a blue ball"}).json()
        mine = user_folder(media, "local")
        left = [mine / job["id"] / "1" / "x_0.png", mine / job["id"] / "1" / "x_0.png.json"]
        kept = mine / other["id"] / "1" / "y_0.png"
        for path in (*left, kept):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"partial")
        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
        assert not (mine / job["id"]).exists() and kept.is_file()
