"""The studio makes clips: Animate on an image asks for the motion, the length, a loop or an
end image from the gallery, shows the job's progress and preview, then plays the clip in a
<video>; Reel queues a reel of the length asked for. Real headless Chromium against the app
under uvicorn, on the tiny engines (128 px)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine_wrappers import WrappedEngine
from imagineer.engines.base import GenerationInput, GenerationOutput, RunControl
from imagineer.runtime import EMBEDDED_VIDEO
from server_apps import build_app
from test_service import SmallEngine, tiny_embedded
from test_video_service import SmallVideo
from test_web_studio import LiveServer, browser, shot

__all__ = ["browser"]  # the module's browser fixture, shared with test_web_studio


class PausingVideo(WrappedEngine):
    """The small video engine, paused at its first progress report until the test releases
    it: the clip's job is then surely running, with progress and a preview, when looked at."""

    def __init__(self) -> None:
        super().__init__(SmallVideo())
        self.release = threading.Event()

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        def report(step: int, total: int, preview: np.ndarray | None = None) -> None:
            if control.on_progress is not None:
                control.on_progress(step, total, preview)
            self.release.wait(60)

        return super().generate(batch, RunControl(report, control.should_cancel))


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[tuple[LiveServer, PausingVideo]]:
    """A live server with a worker, signing and watermarking on, over the small engines."""
    video = PausingVideo()
    app, runtime, _ = build_app(
        tmp_path, SmallEngine(tiny_embedded()), worker=True, watermark=True, sign=True
    )
    runtime.add_engine(video, name=EMBEDDED_VIDEO)
    with runtime, LiveServer(app) as live:
        yield live, video
        video.release.set()  # a failed test must not leave the worker paused at shutdown


def test_studio_animates_an_image_and_plays_the_clip(
    browser: Any, studio: tuple[LiveServer, PausingVideo]
) -> None:
    from playwright.sync_api import expect

    live, video = studio
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live.url)
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a red ball on green grass --seed 7")
    prompt.press("Enter")
    grid = page.locator("article.job").first
    expect(grid.locator(".tile img.media:not(.loading)")).to_have_count(4)

    # 1. Animate asks for the motion, the length (within the server's limits), a loop or an
    # image to end on, chosen from the gallery; then it queues the clip
    grid.locator(".tile").first.hover()
    animate = grid.get_by_role("button", name="Animate image 1")
    expect(animate).to_have_attribute("aria-disabled", "false")
    animate.click()
    dialog = page.get_by_role("dialog", name="Animate image 1")
    expect(dialog).to_be_visible()
    dialog.get_by_text("High motion").click()
    length = dialog.get_by_label("Length")
    expect(length).to_have_value("5")
    assert (length.get_attribute("min"), length.get_attribute("max")) == ("0.5", "20")
    choose = dialog.get_by_role("button", name="Choose an end image from the gallery")
    choose.click()
    end = dialog.get_by_role(
        "button", name="End on image 2 of “a red ball on green grass --seed 7”"
    )
    expect(end.locator("img.media:not(.loading)")).to_be_visible()
    shot(page, "animate-picker")
    end.click()
    expect(dialog.locator(".end-choice")).to_contain_text("Image 2 · a red ball")
    loop = dialog.get_by_label("Loop: end where it starts")
    loop.check()  # a loop ends on its first frame: the end image goes
    expect(dialog.locator(".end-choice")).to_have_text("None")
    loop.uncheck()
    choose.click()
    end.click()
    length.fill("25")
    dialog.get_by_role("button", name="Animate", exact=True).click()
    expect(dialog.locator(".field-error")).to_have_text(
        "Length: give a number of seconds from 0.5 to 20."
    )
    length.fill("2")
    shot(page, "animate-dialog")
    dialog.get_by_role("button", name="Animate", exact=True).click()
    expect(dialog).to_have_count(0)

    # 2. its progress, with a preview of the image it starts on
    card = page.locator("article.job").filter(
        has=page.locator(".badge", has_text="Animate · high · 2 s")
    )
    expect(card.locator(".progress-label")).to_contain_text("Rendering clip")
    expect(card.locator("img.preview")).to_be_visible()
    shot(page, "animate-progress")
    video.release.set()

    # 3. the clip plays in a <video> whose source is the MP4 fetched with the key
    player = card.locator("video.media")
    expect(player).to_have_attribute("src", re.compile(r"^blob:"))
    loaded = "v => v.readyState >= 2 || new Promise(ok => v.addEventListener('loadeddata', ok))"
    player.evaluate(loaded)
    state = player.evaluate(
        "v => ({ready: v.readyState, seconds: v.duration, width: v.videoWidth, error: v.error})"
    )
    assert state["ready"] >= 2 and state["error"] is None, state
    assert state["seconds"] == pytest.approx(2.0, abs=0.1) and state["width"] == 128, state
    expect(card.locator(".clip-bar")).to_contain_text("2 s · 48 frames · MP4")
    shot(page, "clip")

    # 4. its details: the clip's marks as verify reads them, and every file to download
    card.get_by_role("button", name="AI info of clip 1").click()
    panel = page.get_by_label("Image details")
    expect(panel.locator("#panel-title")).to_have_text("Clip")
    expect(panel.locator(".verdict")).to_have_attribute("data-finding", "manifest_valid")
    expect(panel.locator(".facts").first).to_contain_text("2 s · 48 frames at 24 fps")
    recipe = panel.locator(".recipe pre")  # the clip's own recipe: it ends on the chosen image
    expect(recipe).to_contain_text('"end": true')
    expect(recipe).to_contain_text('"loop": false')
    for name in ("Download", "Recipe", "Poster", "Contact sheet"):
        expect(panel.get_by_role("link", name=name, exact=True)).to_have_attribute(
            "href", re.compile(r"^blob:")
        )
    shot(page, "clip-details")
    panel.get_by_role("button", name="Close details").click()

    # 5. Reel queues a reel of the prompt, as long as asked (cancelled here: its rendering is
    # the API tests')
    reel_length = page.get_by_label("Reel length in seconds")
    expect(reel_length).to_have_value("10")
    assert (reel_length.get_attribute("min"), reel_length.get_attribute("max")) == ("1", "60")
    reel_length.fill("3")
    page.get_by_role("button", name="Reel", exact=True).click()
    reel = page.locator("article.job").filter(has=page.locator(".badge", has_text="Reel · 3 s"))
    expect(reel).to_have_count(1)
    reel.get_by_role("button", name="Cancel").click()
    expect(reel).to_have_attribute("data-state", "cancelled")
    assert errors == [], errors
