"""The web studio: the API it relies on (prompt check, search, SSE previews), then the page
itself driven in real headless Chromium against a real uvicorn server on the tiny engine."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from engine_wrappers import WrappedEngine
from imagineer.engines.base import GenerationInput, GenerationOutput, RunControl
from imagineer.service.previews import PreviewWriter, preview_every, preview_file, read_preview
from server_apps import LOCAL, build_app
from test_server_sref import png_bytes
from test_service import SmallEngine, tiny_embedded

WAIT_MS = 60_000  # the longest the browser tests wait for anything to show


class PausingEngine(WrappedEngine):
    """The small engine, paused after its first preview until the test releases it: the
    preview is then surely on disk while the job runs, whatever the machine's speed."""

    def __init__(self) -> None:
        super().__init__(SmallEngine(tiny_embedded()))
        self.release = threading.Event()
        self.paused = threading.Event()

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
        return super().generate(batch, paused)


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


def test_the_studio_is_served_at_the_root_beside_the_api_and_its_docs(idle: TestClient) -> None:
    page = idle.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/static/app.js">' in page.text
    for name, kind in [("app.js", "javascript"), ("style.css", "text/css"), ("icon.svg", "svg")]:
        response = idle.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"], name
    assert idle.get("/static/nope.js").status_code == 404
    assert idle.get("/docs").status_code == 200
    paths = idle.get("/openapi.json").json()["paths"]
    assert "/v1/prompts/parse" in paths and "/" not in paths
    missing = idle.get("/v1/nope")  # unknown API paths still answer in the API's JSON shape
    assert missing.status_code == 404 and "error" in missing.json()


# --- the page, in real headless Chromium ------------------------------------------------------


def chromium_path() -> str | None:
    """The browser to drive: $IMAGINEER_CHROMIUM, else a Chromium or Chrome on PATH."""
    given = os.environ.get("IMAGINEER_CHROMIUM")
    if given:
        return given
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((found for name in names if (found := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright (the system browser: nothing is downloaded)."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        executable, why = None, "playwright is not installed (pip install -e '.[dev]')"
    else:
        why = "no chromium on PATH (apt-get install chromium, or set IMAGINEER_CHROMIUM)"
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests must run in CI: {why}")
        pytest.skip(why)
    from playwright.sync_api import expect

    # Generous waits: a busy shared CPU can be slow; a broken page still fails, only later.
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable)
        yield chromium
        chromium.close()


class LiveServer:
    """The real app under uvicorn on 127.0.0.1, on a free port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="studio-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        (sock,) = [s for server in self.server.servers for s in server.sockets]
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[tuple[LiveServer, PausingEngine]]:
    """A live server with a worker, signing and watermarking on, over the pausing engine."""
    engine = PausingEngine()
    app, runtime, _ = build_app(tmp_path, engine, worker=True, watermark=True, sign=True)
    with runtime, LiveServer(app) as live:
        yield live, engine
        engine.release.set()  # a failed test must not leave the worker paused at shutdown


def shot(page: Any, name: str) -> None:
    """Keep a screenshot when $IMAGINEER_SCREENSHOTS names a folder (for docs and review)."""
    folder = os.environ.get("IMAGINEER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def test_studio_checks_the_prompt_shows_progress_the_grid_an_upscale_and_ai_info(
    browser: Any, studio: tuple[LiveServer, PausingEngine]
) -> None:
    from playwright.sync_api import expect

    live, engine = studio
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live.url)
    expect(page.locator("#auth-status")).to_have_text("Local mode")

    # 1. a prompt error shows inline, at the bad token, with its fix
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a red ball on green grass --stylise 200")
    error = page.locator("#prompt-error")
    expect(error).to_contain_text("unknown parameter --stylise, did you mean --stylize?")
    expect(page.locator("#prompt-mirror mark.bad")).to_have_text("--stylise")
    expect(page.locator("#generate")).to_be_disabled()
    shot(page, "prompt-error")
    page.get_by_role("button", name="Use --stylize").click()
    expect(prompt).to_have_value("a red ball on green grass --stylize 200")
    expect(error).to_have_count(0)
    expect(page.locator("#prompt-status")).to_contain_text("4 images")

    # 2. a good prompt: live progress with a preview, then the 2x2 grid
    prompt.fill("a red ball on green grass --seed 7")
    prompt.press("Enter")
    card = page.locator("article.job").first
    expect(card.locator("img.preview")).to_be_visible()
    expect(card.locator(".progress-label")).to_contain_text("step")
    shot(page, "progress")
    engine.release.set()
    tiles = card.locator(".tile img.media:not(.loading)")
    expect(tiles).to_have_count(4)
    assert all(width > 0 for width in tiles.evaluate_all("els => els.map(e => e.naturalWidth)"))
    animate = card.get_by_role("button", name="Animate image 1")  # test_web_studio_video
    expect(animate).to_have_attribute("aria-disabled", "false")
    expect(animate).to_have_attribute("title", "Animate into a short clip")
    first_width = tiles.first.evaluate("e => e.naturalWidth")

    # 3. upscale the first image: a new job whose one image is twice the size
    card.locator(".tile").first.hover()
    shot(page, "grid")
    card.get_by_role("button", name="Upscale image 1").click()
    upscaled = page.locator("article.job[data-state='done']").filter(has_text="Upscale 2x")
    big = upscaled.locator(".tile img.media:not(.loading)")
    expect(big).to_have_count(1)
    assert big.evaluate("e => e.naturalWidth") == 2 * first_width

    # 4. its AI info: what verify reads from the file
    upscaled.get_by_role("button", name="Details of Image 1").click()
    panel = page.get_by_label("Image details")
    expect(panel).to_be_visible()
    verdict = panel.locator(".verdict")
    expect(verdict).to_have_attribute("data-finding", "manifest_valid")
    expect(verdict).to_contain_text("AI-generated")
    expect(panel.locator(".checks")).to_contain_text("found (payload")
    expect(panel.locator(".provenance")).to_contain_text("Made from")
    shot(page, "ai-info")
    assert errors == [], errors


def test_studio_uploads_style_references_and_shows_a_refused_one_inline(
    browser: Any, studio: tuple[LiveServer, PausingEngine]
) -> None:
    from playwright.sync_api import expect

    live, engine = studio
    engine.release.set()  # no pauses: previews are the first test's subject
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live.url)
    prompt = page.get_by_label("Prompt", exact=True)
    button = page.get_by_role("button", name="Upload style reference")

    def upload(name: str, data: bytes) -> None:
        with page.expect_file_chooser() as chooser:
            button.click()
        chooser.value.set_files(files=[{"name": name, "mimeType": "image/png", "buffer": data}])

    # 1. an upload through the button adds --sref upload:ID to the prompt
    prompt.fill("a lighthouse on a cliff")
    upload("noir.png", png_bytes("noir"))
    ref = r"upload:[0-9a-f]{24}"
    expect(prompt).to_have_value(re.compile(rf"^a lighthouse on a cliff --sref ({ref})$"))
    first = prompt.input_value().rsplit(" ", 1)[1]
    expect(page.locator("#prompt-status")).to_contain_text("4 images")  # it parses

    # 2. a second one joins the same --sref list (a parameter may be given only once)
    prompt.fill(f"{prompt.input_value()} --seed 5")
    upload("pastel.png", png_bytes("pastel"))
    expect(prompt).to_have_value(
        re.compile(rf"^a lighthouse on a cliff --sref {first} ({ref}) --seed 5$")
    )
    second = prompt.input_value().split()[-3]
    kept = page.evaluate("fetch('/v1/uploads').then(r => r.json())")["data"]
    assert {item["sref"] for item in kept} == {first, second}, kept  # kept on the server
    shot(page, "sref-upload")
    prompt.press("Enter")
    styled = page.locator("article.job[data-state='done']")
    expect(styled.locator(".tile img.media:not(.loading)")).to_have_count(4)

    # 3. a file that is not an image: said in a message; the prompt is left as it was
    before = prompt.input_value()
    upload("notes.png", b"not an image")
    expect(page.locator(".toast.error")).to_contain_text("Style reference not uploaded")
    expect(prompt).to_have_value(before)

    # 4. a reference that is not the caller's: refused inline, at the reference, no popup
    missing = "upload:" + "0" * 24
    prompt.fill(f"a lighthouse on a cliff --sref {missing}::2 --seed 5")
    expect(page.locator("#generate")).to_be_enabled()  # it parses: the refusal comes on queueing
    page.evaluate("document.querySelectorAll('.toast').forEach(t => t.remove())")
    prompt.press("Enter")
    error = page.locator("#prompt-error")
    expect(error).to_contain_text(f"--sref {missing}: you have no upload with that id")
    expect(page.locator("#prompt-mirror mark.bad")).to_have_text(missing)
    expect(page.locator("#generate")).to_be_disabled()
    expect(page.locator(".toast")).to_have_count(0)
    shot(page, "sref-refused")
    expect(page.locator("article.job")).to_have_count(1)  # nothing was queued
    assert errors == [], errors


def test_studio_remixes_varies_and_searches_the_gallery(
    browser: Any, studio: tuple[LiveServer, PausingEngine]
) -> None:
    from playwright.sync_api import expect

    live, engine = studio
    engine.release.set()  # no pauses: previews are the first test's subject
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(live.url)
    prompt = page.get_by_label("Prompt", exact=True)
    done = page.locator("article.job[data-state='done']")
    for count, text in enumerate(["a red ball --seed 3", "a blue whale --seed 4"], start=1):
        prompt.fill(text)
        expect(page.locator("#prompt-status")).to_contain_text("seed")
        prompt.press("Enter")
        expect(done).to_have_count(count)

    # remix: the image's recipe prompt goes into the box; the edit renders as a remix job
    whale = done.first
    expect(whale.locator(".job-prompt")).to_have_text("a blue whale --seed 4")
    whale.locator(".tile").nth(1).hover()
    whale.get_by_role("button", name="Remix image 2").click()
    expect(page.locator("#remix-banner")).to_be_visible()
    expect(prompt).to_have_value("a blue whale --seed 4")
    expect(page.locator("#generate")).to_have_text("Remix")
    prompt.fill("a green whale --seed 4")
    prompt.press("Enter")
    expect(page.locator("#remix-banner")).to_be_hidden()
    remixed = done.filter(has=page.locator(".badge", has_text="Remix"))
    expect(remixed.locator(".tile img.media:not(.loading)")).to_have_count(4)
    expect(remixed.locator(".job-prompt")).to_have_text("a green whale --seed 4")

    # vary strongly: four new images of the remix
    remixed.locator(".tile").first.hover()
    remixed.get_by_role("button", name="Vary (strong) image 1").click()
    varied = done.filter(has=page.locator(".badge", has_text="Vary · strong"))
    expect(varied.locator(".tile img.media:not(.loading)")).to_have_count(4)

    # the gallery finds jobs by the words of their prompts
    page.get_by_role("button", name="Gallery", exact=True).click()
    cards = page.locator(".gallery-card")
    expect(cards).to_have_count(4)
    search = page.get_by_label("Search your prompts")
    search.fill("green WHALE")
    expect(cards).to_have_count(2)  # the remix and its variations
    search.fill("red ball")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("a red ball --seed 3")
    search.fill("zebra")
    expect(cards).to_have_count(0)
    expect(page.locator("#gallery-count")).to_have_text("nothing matches “zebra”")
    search.fill("whale")
    expect(cards).to_have_count(3)
    cards.first.click()
    panel = page.get_by_label("Image details")
    expect(panel.locator(".verdict")).to_contain_text("AI-generated")
    panel.get_by_role("button", name="Close details").click()

    # on a phone-sized screen a click on a small tile opens its details, never a hidden action
    page.set_viewport_size({"width": 420, "height": 860})
    page.get_by_role("button", name="Create", exact=True).click()
    page.get_by_role("button", name="Details of Image 3").first.click()
    expect(panel.locator("#panel-title")).to_have_text("Image 3 of 4")
    expect(page.locator("article.job")).to_have_count(4)  # no job was started by the click


def test_studio_asks_for_a_key_and_sends_it(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    app, runtime, _ = build_app(tmp_path, SmallEngine(tiny_embedded()))  # no worker: jobs wait
    with runtime, LiveServer(app) as live:
        secret = app.state.server.keys.create("alice").secret  # ends keyless local mode
        page = browser.new_page()
        page.goto(live.url)
        expect(page.locator("#auth-status")).to_have_text("Key needed")
        expect(page.locator("#view-key")).to_be_visible()
        status = page.locator("#key-status")
        expect(status).to_contain_text("an API key is needed")

        key = page.get_by_label("Key", exact=True)
        key.fill("imk_not-a-real-key")
        page.get_by_role("button", name="Save key").click()
        expect(status).to_contain_text("not valid")
        key.fill(secret)
        page.get_by_role("button", name="Save key").click()
        expect(status).to_have_text("Key saved: the server accepts it.")
        expect(page.locator("#auth-status")).to_have_text(f"Key …{secret[-4:]}")
        assert page.evaluate("localStorage.getItem('imagineer.apiKey')") == secret

        page.get_by_role("button", name="Create", exact=True).click()
        prompt = page.get_by_label("Prompt", exact=True)
        prompt.fill("a purple balloon over the sea")
        expect(page.locator("#prompt-status")).to_contain_text("4 images")  # checked with the key
        prompt.press("Enter")
        expect(page.locator("article.job[data-state='queued']")).to_have_count(1)
        prompt.fill("a zorblax over the sea")  # parses, but the policy refuses it when queued
        expect(page.locator("#generate")).to_be_enabled()
        prompt.press("Enter")
        expect(page.locator("#prompt-error")).to_contain_text("refused")
        expect(page.locator("#generate")).to_be_disabled()
        (job,) = runtime.store.list(user_id="alice")
        assert job.payload["prompt"] == "a purple balloon over the sea"

        page.reload()  # the key is remembered
        expect(page.locator("#auth-status")).to_have_text(f"Key …{secret[-4:]}")
        expect(page.locator("article.job")).to_have_count(1)
