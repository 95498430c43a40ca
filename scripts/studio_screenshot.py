"""Screenshot of the web studio on the embedded model, for docs/studio.png.

    .venv/bin/python scripts/studio_screenshot.py docs/studio.png

Serves the app on 127.0.0.1 with a throw-away data folder, drives the system Chromium through
Playwright (two prompts, an upscale, its AI info) and writes the PNG. Needs the dev extra and a
Chromium on PATH (or IMAGINEER_CHROMIUM); takes about half a minute on a small CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from playwright.sync_api import expect, sync_playwright

from imagineer.config import Settings
from imagineer.runtime import Runtime
from imagineer.server.app import create_app
from imagineer.server.options import ServerOptions

PROMPTS = (
    "three red balloons over the sea at dawn, watercolor --ar 16:9 --seed 11",
    "a futuristic city at sunset with flying cars --ar 16:9 --seed 7",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the PNG")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    chromium = os.environ.get("IMAGINEER_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium on PATH: apt-get install chromium, or set IMAGINEER_CHROMIUM")
    with tempfile.TemporaryDirectory(prefix="imagineer-studio-") as folder:
        root = Path(folder)  # IMAGINEER_* settings apply (e.g. IMAGINEER_THREADS), but not its data
        settings = Settings.from_env(data_dir=root / "data", output_dir=root / "out")
        with Runtime.from_settings(settings) as runtime:
            app = create_app(settings, runtime=runtime, options=ServerOptions(port=0))
            url, stop = serve(app)
            try:
                shoot(url, chromium, args.out, (args.width, args.height))
            finally:
                stop()
    print(f"wrote {args.out}")


def serve(app: FastAPI) -> tuple[str, Callable[[], None]]:
    """Run the app under uvicorn in a thread; its URL and a function that stops it."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(30)

    return f"http://127.0.0.1:{port}", stop


def shoot(url: str, chromium: str, out: Path, size: tuple[int, int]) -> None:
    expect.set_options(timeout=600_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        page.goto(url)
        prompt = page.get_by_label("Prompt", exact=True)
        done = page.locator("article.job[data-state='done']")
        for count, text in enumerate(PROMPTS, start=1):
            prompt.fill(text)
            prompt.press("Enter")
            expect(done).to_have_count(count)
        newest = done.first
        newest.locator(".tile").nth(1).hover()
        newest.get_by_role("button", name="Upscale image 2").click()
        expect(done).to_have_count(len(PROMPTS) + 1)
        done.first.get_by_role("button", name="Details of Image 1").click()
        expect(page.locator(".verdict")).to_be_visible()
        prompt.fill("a red bird over the hills --stylise 300")
        expect(page.locator("#prompt-error")).to_be_visible()
        page.mouse.move(size[0] // 3, size[1] - 5)
        page.wait_for_timeout(500)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


if __name__ == "__main__":
    main()
