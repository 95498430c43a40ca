"""The web studio: static files (no build step) that the API server serves at `/`."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR: Final = Path(__file__).parent / "static"
# The page loads only its own files; images and clips come from the API as blob: URLs.
CONTENT_POLICY: Final = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def mount_studio(app: FastAPI) -> None:
    """Serve the studio page at `/` and its files under `/static/` (the API keeps `/v1`)."""
    index = STATIC_DIR / "index.html"
    headers = {"Content-Security-Policy": CONTENT_POLICY, "Cache-Control": "no-cache"}

    @app.get("/", include_in_schema=False)
    def studio() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers=headers)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="studio-static")
