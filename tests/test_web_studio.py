"""The web studio: the API it relies on (prompt check, search, SSE previews), then the page
itself driven in real headless Chromium against a real uvicorn server on the tiny engine."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from imagineer.engines.base import EngineInfo, GenerationInput, GenerationOutput, RunControl
from imagineer.runtime import Runtime
from imagineer.server.app import create_app
from imagineer.server.options import ServerOptions
from imagineer.service import Service
from imagineer.service.previews import PreviewWriter, preview_every, preview_file, read_preview
from test_service import DENY_POLICY, SmallEngine, quiet_settings, tiny_embedded

LOCAL = ("127.0.0.1", 50000)  # a client on this machine: keyless local mode
FAST = {"poll_interval_s": 0.05, "heartbeat_s": 0.1, "events_poll_s": 0.05}


class PausingEngine:
    """The small engine, paused after its first preview until the test releases it: the
    preview is then surely on disk while the job runs, whatever the machine's speed."""

    def __init__(self) -> None:
        self.inner = SmallEngine(tiny_embedded())
        self.release = threading.Event()
        self.paused = threading.Event()

    @property
    def info(self) -> EngineInfo:
        return self.inner.info

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        def report(step: int, total: int, preview: np.ndarray | None = None) -> None:
            if control.on_progress is not None:
                control.on_progress(step, total, preview)
            if preview is not None and not self.release.is_set():
                self.paused.set()
                self.release.wait(60)

        paused = RunControl(report, control.should_cancel, preview_every=control.preview_every)
        return self.inner.generate(batch, paused)


def build_app(tmp_path: Path, engine: object, **changes: Any) -> tuple[FastAPI, Runtime, Service]:
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_POLICY)
    marks = {"watermark": changes.pop("watermark", False), "sign": changes.pop("sign", False)}
    settings = quiet_settings(tmp_path, policy_file=policy, **marks)
    runtime = Runtime.from_settings(settings)
    runtime.add_engine(engine, name="embedded")
    service = Service(runtime)
    options = ServerOptions(**{"worker": False, **FAST, **changes})
    return create_app(settings, service=service, options=options), runtime, service


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[TestClient]:
    """A client of an app with no worker: jobs stay queued."""
    app, runtime, _ = build_app(tmp_path, SmallEngine(tiny_embedded()))
    with runtime, TestClient(app, client=LOCAL) as client:
        yield client


def read_events(lines: Iterator[str], until: str) -> list[tuple[str, dict]]:
    """(event, data) pairs from an event stream, up to and including the first `until`."""
    found: list[tuple[str, dict]] = []
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            found.append((name, json.loads(line.removeprefix("data: "))))
            if name == until:
                return found
    raise AssertionError(f"the stream ended without a {until!r} event: {found}")


# --- the API the studio relies on -------------------------------------------------------------


def test_prompt_check_returns_the_requests_or_the_error_with_its_place(idle: TestClient) -> None:
    good = idle.post("/v1/prompts/parse", json={"prompt": "a {red, blue} fox --ar 16:9 --v 6"})
    assert good.status_code == 200, good.text
    body = good.json()
    assert body["valid"] is True and body["error"] is None
    assert [r["canonical"] for r in body["requests"]] == [
        "a red fox --ar 16:9 --v 6",
        "a blue fox --ar 16:9 --v 6",
    ]
    assert body["requests"][0]["request"]["params"]["aspect"] == [16, 9]
    assert "--v 6 was ignored" in body["requests"][0]["warnings"][0]

    text = "a cat --stylise 200"
    bad = idle.post("/v1/prompts/parse", json={"prompt": text}).json()
    assert bad["valid"] is False and bad["requests"] == []
    error = bad["error"]
    assert error["code"] == "prompt_error"
    assert error["span"] == [6, 15] and text[6:15] == error["token"] == "--stylise"
    assert error["suggestion"] == "--stylize"
    assert error["message"].endswith("did you mean --stylize?")
    assert error["caret"].splitlines()[1].strip() == "^" * len("--stylise")

    unsupported = idle.post("/v1/prompts/parse", json={"prompt": "a cat --stop 50"}).json()
    assert unsupported["valid"] is False
    assert unsupported["error"]["code"] == "unsupported_request"
    assert "--stop 50" in unsupported["error"]["message"]
    assert idle.post("/v1/prompts/parse", json={"text": "a cat"}).status_code == 422


def test_job_search_matches_every_word_of_the_prompt_and_pages(idle: TestClient) -> None:
    prompts = ["a red fox", "a blue whale", "a red whale", "a Red Whale at dusk"]
    ids = [idle.post("/v1/jobs", json={"prompt": p}).json()["id"] for p in prompts]
    found = idle.get("/v1/jobs", params={"q": "whale RED"}).json()
    assert [job["id"] for job in found["data"]] == [ids[3], ids[2]]  # newest first
    assert found["next_cursor"] is None
    first = idle.get("/v1/jobs", params={"q": "whale", "limit": 1}).json()
    assert [job["id"] for job in first["data"]] == [ids[3]]
    more = idle.get(
        "/v1/jobs", params={"q": "whale", "limit": 2, "before": first["next_cursor"]}
    ).json()
    assert [job["id"] for job in more["data"]] == [ids[2], ids[1]]
    assert idle.get("/v1/jobs", params={"q": "zebra"}).json() == {"data": [], "next_cursor": None}
    assert len(idle.get("/v1/jobs", params={"q": "  "}).json()["data"]) == 4  # blank: no filter


def test_preview_writer_shrinks_labels_and_replaces_atomically(tmp_path: Path) -> None:
    path = preview_file({"out_dir": str(tmp_path)}, "../odd/id", tmp_path / "elsewhere")
    assert path.parent == tmp_path / ".previews" and ".." not in path.name
    writer = PreviewWriter(path)
    writer(3, 12, np.full((512, 256, 3), 200, np.uint8))
    first = read_preview(path)
    assert first is not None and (first.step, first.total) == (3, 12)
    with Image.open(io.BytesIO(first.png)) as image:
        assert image.size == (128, 256)  # shrunk to 256 px on the long side, aspect kept
    writer(6, 12, np.zeros((16, 16, 3), np.uint8))
    second = read_preview(path)
    assert second is not None and second.step == 6
    assert list(path.parent.iterdir()) == [path]  # no partial file left behind
    writer.remove()
    assert read_preview(path) is None
    assert [preview_every(n) for n in (1, 4, 8, 30)] == [1, 1, 2, 7]


def test_service_reports_previews_of_the_image_in_progress(tmp_path: Path) -> None:
    _, runtime, service = build_app(tmp_path, SmallEngine(tiny_embedded()))
    seen: list[tuple[int, int, tuple[int, ...]]] = []
    with runtime:
        service.imagine(
            "a red ball --seed 3",
            steps=8,
            on_preview=lambda step, total, image: seen.append((step, total, image.shape)),
        )
    # one engine call of 8 steps for the grid: a preview every 2 steps
    assert [(step, total) for step, total, _ in seen] == [(2, 8), (4, 8), (6, 8), (8, 8)]
    assert all(len(shape) == 3 and shape[2] == 3 for *_, shape in seen)


def test_events_carry_previews_while_the_job_runs(tmp_path: Path) -> None:
    engine = PausingEngine()
    app, runtime, service = build_app(tmp_path, engine, worker=True)
    with runtime, TestClient(app, client=LOCAL) as client:
        job = client.post("/v1/jobs", json={"prompt": "a red ball --seed 5", "steps": 8}).json()
        with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
            lines = response.iter_lines()
            got = read_events(lines, until="preview")
            preview = got[-1][1]
            assert preview["id"] == job["id"] and (preview["step"], preview["total"]) == (2, 8)
            assert any(name == "state" and data["state"] == "running" for name, data in got)
            prefix = "data:image/png;base64,"
            assert preview["image"].startswith(prefix)
            png = base64.b64decode(preview["image"].removeprefix(prefix))
            with Image.open(io.BytesIO(png)) as image:
                assert image.format == "PNG" and max(image.size) <= 256
            path = service.preview_path(runtime.store.get(job["id"]))
            assert path.is_file()
            engine.release.set()
            rest = read_events(lines, until="end")
        assert rest[-1][1]["state"] == "done", rest[-1]
        assert len(rest[-1][1]["result"]["images"]) == 4
        assert not path.exists()  # the preview goes when the job ends
