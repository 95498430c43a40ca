"""Where the server keeps outputs and uploads, and how a job's files become (signed) URLs."""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from PIL import Image, UnidentifiedImageError

from imagineer.jobs import Job
from imagineer.media.images import sidecar_path
from imagineer.service import GenerationResult
from imagineer.service.batching import job_root
from imagineer.service.jobs import VIDEO_KINDS
from imagineer.service.previews import FOLDER as PREVIEWS
from imagineer.service.previews import preview_file
from imagineer.service.video import VideoResult

UPLOAD_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
MAX_UPLOAD_PIXELS = 4096 * 4096
UPLOAD_ID_BYTES = 12  # an upload's id is this many random bytes in hex
UPLOAD_ID = re.compile(f"[0-9a-f]{{{2 * UPLOAD_ID_BYTES}}}")


class BadUpload(ValueError):
    """An uploaded file that is not an image the server takes."""


def user_folder(media_dir: Path, user_id: str) -> Path:
    """The user's folder: named by a hash, so user names never become paths."""
    return media_dir / hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]


def media_path(job_id: str, name: str) -> str:
    """The URL path of one file of a job."""
    return f"/v1/media/{quote(job_id, safe='')}/{quote(name, safe='')}"


def result_of(job: Job) -> GenerationResult | None:
    """The typed result of a finished image job, or None (unfinished, or a video job)."""
    if job.result is None or job.kind in VIDEO_KINDS:
        return None
    return GenerationResult.from_dict(job.result)


def video_result_of(job: Job) -> VideoResult | None:
    """The typed result of a finished video job (animate, extend, reel), or None."""
    if job.result is None or job.kind not in VIDEO_KINDS:
        return None
    return VideoResult.from_dict(job.result)


def job_files(job: Job) -> dict[str, Path]:
    """The files a job made, by file name: images and grids, or clips with their recipe
    sidecars, the poster and the contact sheet."""
    video = video_result_of(job)
    if video is not None:
        clips = [v.path for v in video.videos]
        stills = [video.poster.path, video.contact_sheet.path]
        return {p.name: p for p in (*clips, *map(sidecar_path, clips), *stills)}
    result = result_of(job)
    if result is None:
        return {}
    return {path.name: path for path in (*result.paths, *result.grids)}


def delete_job_files(job: Job, media_dir: Path, output_dir: Path) -> int:
    """Delete everything a job made, inside its owner's media folder only; how many files.

    That is the job's own folder (<user>/<job id>: every attempt's outputs with their recipe
    sidecars, a clip's poster and contact sheet with theirs), its progress preview, and for jobs
    from before per-job folders the files its result names directly in the user's folder.
    Another job's files are never touched: not the image an animation started from, nor the
    clip an extend continued (they live in their own jobs' folders). Uploads stay.
    """
    owner = user_folder(media_dir, job.user_id).resolve()
    count = 0
    folder = job_root(job.payload, job.id, output_dir)
    if folder.is_dir() and not folder.is_symlink() and folder.resolve().parent == owner:
        count += sum(1 for p in folder.rglob("*") if p.is_file() or p.is_symlink())
        shutil.rmtree(folder)
    flat = [*job_files(job).values(), preview_file(job.payload, job.id, output_dir)]
    for path in {*flat, *map(sidecar_path, flat)}:
        parent = path.parent.resolve()
        if (parent == owner or parent == owner / PREVIEWS) and path.is_file():
            path.unlink()
            count += 1
    return count


def save_upload(data: bytes, folder: Path, *, max_bytes: int) -> Path:
    """Keep an uploaded PNG, JPEG or WebP image under a random name; raise BadUpload else."""
    if not data:
        raise BadUpload("the uploaded file is empty: send a PNG, JPEG or WebP image")
    if len(data) > max_bytes:
        raise BadUpload(f"the upload is {len(data)} bytes: the limit is {max_bytes}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        raise BadUpload("the upload is not a readable image: send PNG, JPEG or WebP") from None
    if kind not in UPLOAD_FORMATS:
        raise BadUpload(f"the upload is {kind}: send PNG, JPEG or WebP")
    if width * height > MAX_UPLOAD_PIXELS:
        raise BadUpload(f"the image is {width}x{height}: keep it to {MAX_UPLOAD_PIXELS} pixels")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{secrets.token_hex(UPLOAD_ID_BYTES)}{UPLOAD_FORMATS[kind]}"
    path.write_bytes(data)
    return path


@dataclass(frozen=True)
class Upload:
    """One kept upload, as its file says."""

    id: str
    path: Path
    width: int
    height: int
    bytes: int
    created_at: datetime  # when the file was written


def read_upload(path: Path) -> Upload:
    """The upload kept at `path` (its size from the image's header); OSError if unreadable."""
    stat = path.stat()
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise OSError(f"{path.name} is not a readable image") from exc
    created = datetime.fromtimestamp(stat.st_mtime, UTC)
    return Upload(path.stem, path, width, height, stat.st_size, created)


def find_upload(folder: Path, upload_id: str) -> Path | None:
    """The file of upload `upload_id` in a user's upload folder, or None (also for anything
    that is not an upload id, so no id can reach outside the folder)."""
    if not UPLOAD_ID.fullmatch(upload_id):
        return None
    for suffix in UPLOAD_FORMATS.values():
        path = folder / f"{upload_id}{suffix}"
        if path.is_file() and not path.is_symlink():
            return path
    return None


def list_uploads(folder: Path) -> list[Upload]:
    """The uploads in a user's upload folder, newest first; files that are not uploads (or no
    longer readable) are left out."""
    if not folder.is_dir():
        return []
    uploads = []
    suffixes = set(UPLOAD_FORMATS.values())
    for path in folder.iterdir():
        if path.suffix not in suffixes or not UPLOAD_ID.fullmatch(path.stem):
            continue
        if path.is_symlink() or not path.is_file():
            continue
        try:
            uploads.append(read_upload(path))
        except OSError:  # deleted meanwhile, or damaged: not an upload to offer
            continue
    return sorted(uploads, key=lambda u: (u.created_at, u.id), reverse=True)


@dataclass(frozen=True)
class UrlSigner:
    """Signs media URLs that work without a key until they expire (OpenAI's "url" format).

    The secret lives in memory: signed URLs also stop working when the server restarts.
    """

    secret: bytes

    @classmethod
    def create(cls) -> UrlSigner:
        return cls(secrets.token_bytes(32))

    def signature(self, job_id: str, name: str, expires: int) -> str:
        message = f"{job_id}\n{name}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def signed_path(self, job_id: str, name: str, expires: int) -> str:
        sig = self.signature(job_id, name, expires)
        return f"{media_path(job_id, name)}?expires={expires}&signature={sig}"

    def valid(self, job_id: str, name: str, expires: int, signature: str, now: float) -> bool:
        if not signature.isascii():  # compare_digest refuses other text: it cannot match anyway
            return False
        expected = self.signature(job_id, name, expires)
        return now < expires and hmac.compare_digest(expected, signature)
