"""Style references (--sref): what a caller may name (files here, their uploads, images of their
own jobs), pinned by path and hash when a job is queued, read and checked before any compute."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from imagineer.engines.base import StyleReference
from imagineer.media.images import image_to_array, read_recipe
from imagineer.prompts import PromptError, Request, parse_all
from imagineer.provenance.recipe import content_hash
from imagineer.service.jobs import ImagineJob, JobRequest, PinnedStyle, RemixJob, VaryJob
from imagineer.service.plan import UnsupportedRequest, request_of, style_problems

if TYPE_CHECKING:
    from imagineer.jobs import Job

MAX_SIDE = 1024  # larger references are shrunk: engines read them at 32 to 336 px
MAX_BYTES = 64 * 1024 * 1024
JOB_REF = re.compile(r"job:([A-Za-z0-9_-]{1,64})(?:/([0-9]{1,4}))?")  # job:ID or job:ID/INDEX
UPLOAD_REF = re.compile(r"upload:([A-Za-z0-9_-]{1,64})")
UPLOAD_SUFFIXES = (".png", ".jpg", ".webp")  # what the server keeps uploads as
HOW_OVER_HTTP = (
    "upload the image (POST /v1/uploads) and write --sref upload:ID, or use an image of one "
    "of your finished jobs: --sref job:JOB_ID/INDEX"
)


class StyleRefused(UnsupportedRequest):
    """A --sref the caller may not use here: a file path sent over HTTP, or an upload or job
    that is not theirs (unknown ones read the same, on purpose)."""


@dataclass(frozen=True)
class StyleSources:
    """What a caller's --sref references may name."""

    paths: bool = True  # files on this machine: the CLI, the Python API, a local-mode server
    uploads: Path | None = None  # the caller's upload folder (upload:ID); None: no uploads


LOCAL_FILES = StyleSources()

FindJob = Callable[[str], "Job"]  # the caller's job by id; raises JobNotFound for any other


@dataclass(frozen=True)
class StyleResolver:
    """Turns --sref text into image bytes for one caller.

    With `pinned` (a queued job's), only those references are read, from the paths pinned when
    the job was queued, and only while their hashes still match."""

    sources: StyleSources = LOCAL_FILES
    find_job: FindJob | None = None  # None: job:ID references are refused
    pinned: Mapping[str, PinnedStyle] | None = None

    def locate(self, text: str) -> Path:
        """The file a reference names, or StyleRefused; a path is refused from its text alone
        (nothing on disk is looked at) unless this caller may read files here."""
        job = JOB_REF.fullmatch(text)
        if job is not None:
            return self._job_image(text, job.group(1), int(job.group(2) or 0))
        upload = UPLOAD_REF.fullmatch(text)
        if upload is not None:
            return self._upload(text, upload.group(1))
        if not self.sources.paths:
            raise StyleRefused(
                f"--sref {text}: the server reads no file paths from prompts sent over HTTP; "
                + HOW_OVER_HTTP
            )
        return Path(text).expanduser().resolve()

    def read(self, text: str) -> tuple[bytes, str]:
        """The bytes of the image a reference names, and their sha256."""
        if self.pinned is None:
            data = _read(self.locate(text), text)
            return data, content_hash(data)
        pin = self.pinned.get(text)
        if pin is None:
            raise UnsupportedRequest(
                f"--sref {text} was not resolved when the job was queued: queue it again"
            )
        if not Path(pin.path).is_file():
            raise UnsupportedRequest(
                f"--sref {text}: its image is gone since the job was queued: queue it again"
            )
        data = _read(Path(pin.path), text)
        digest = content_hash(data)
        if digest != pin.sha256:
            raise UnsupportedRequest(
                f"--sref {text} changed after the job was queued (sha256 {pin.sha256[:12]}… "
                f"then, {digest[:12]}… now): queue the job again to use the new image"
            )
        return data, digest

    def pin(self, texts: Iterable[str]) -> tuple[PinnedStyle, ...]:
        """Each distinct reference resolved to an absolute path and hashed now (and checked to
        be a readable image), for a job to take to its worker."""
        pinned = []
        for text in dict.fromkeys(texts):
            path = self.locate(text)
            data = _read(path, text)
            _pixels(text, data)
            pinned.append(PinnedStyle(text, str(path), content_hash(data)))
        return tuple(pinned)

    def _upload(self, text: str, upload_id: str) -> Path:
        folder = self.sources.uploads
        if folder is None:
            raise StyleRefused(
                f"--sref {text}: uploads are images sent to an imagineer server; here give "
                "the image's path"
            )
        for suffix in UPLOAD_SUFFIXES:
            path = folder / f"{upload_id}{suffix}"
            if path.is_file() and not path.is_symlink():
                return path
        raise StyleRefused(
            f"--sref {text}: you have no upload with that id (POST /v1/uploads answers one)"
        )

    def _job_image(self, text: str, job_id: str, index: int) -> Path:
        from imagineer.jobs import JobNotFound, JobState
        from imagineer.service.jobs import VIDEO_KINDS
        from imagineer.service.results import GenerationResult

        if self.find_job is None:
            raise StyleRefused(f"--sref {text}: jobs cannot be named here; give an image file")
        try:
            job = self.find_job(job_id)
        except JobNotFound:
            raise StyleRefused(f"--sref {text}: you have no job {job_id!r}") from None
        if job.kind in VIDEO_KINDS:
            raise StyleRefused(f"--sref {text}: job {job_id!r} made a clip, not images")
        if job.state is not JobState.DONE or job.result is None:
            raise StyleRefused(
                f"--sref {text}: job {job_id!r} is {job.state.value}: wait until it is done"
            )
        images = GenerationResult.from_dict(job.result).images
        if index >= len(images):
            raise StyleRefused(f"--sref {text}: job {job_id!r} has images 0 to {len(images) - 1}")
        path = images[index].path
        if not path.is_file():
            raise StyleRefused(f"--sref {text}: image {index} of job {job_id!r} is gone")
        return path


def load_styles(
    request: Request,
    *,
    expected: Sequence[str] = (),
    resolver: StyleResolver | None = None,
) -> tuple[StyleReference, ...]:
    """The request's --sref images, in prompt order, as `resolver` reads them (default: files
    on this machine); `expected`: the sha256 of each file that a recipe recorded (a re-render
    refuses files that changed since)."""
    refs = request.params.sref
    problems = style_problems(request)
    if problems:
        raise UnsupportedRequest("; ".join(problems))
    if expected and len(expected) != len(refs):
        raise UnsupportedRequest(
            f"the recipe records {len(expected)} style references but its prompt has {len(refs)}"
        )
    resolver = resolver or StyleResolver()
    styles = []
    for i, ref in enumerate(refs):
        data, digest = resolver.read(ref.text)
        if expected and expected[i] != digest:
            raise UnsupportedRequest(
                f"--sref {ref.text} has changed since the recipe was made (sha256 "
                f"{expected[i][:12]}… then, {digest[:12]}… now): restore it to re-render"
            )
        styles.append(StyleReference(_pixels(ref.text, data), digest, ref.weight))
    return tuple(styles)


def pin_styles(request: JobRequest, resolver: StyleResolver) -> JobRequest:
    """The job request with every --sref of its prompt (or, without one, of its image's recipe)
    pinned now; what a caller passed as pinned is never trusted, it is made again."""
    if not isinstance(request, ImagineJob | VaryJob | RemixJob):
        return request
    requests = _requests_of(request)
    for parsed in requests:
        problems = style_problems(parsed)
        if problems:
            raise UnsupportedRequest("; ".join(problems))
    refs = [ref.text for parsed in requests for ref in parsed.params.sref]
    return dataclasses.replace(request, sref=resolver.pin(refs))


def _requests_of(request: ImagineJob | VaryJob | RemixJob) -> list[Request]:
    if request.prompt is not None:
        return parse_all(request.prompt)
    recipe = read_recipe(Path(request.path))
    if recipe is None:
        return []
    parsed = request_of(recipe)
    if parsed is not None:
        return [parsed]
    try:
        return parse_all(recipe.prompt)
    except PromptError:  # the run reports it
        return []


def _read(path: Path, text: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UnsupportedRequest(f"--sref {text}: {size} bytes; the limit is {MAX_BYTES}")
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UnsupportedRequest(f"--sref {text}: no such image file") from None
    except PermissionError:
        raise UnsupportedRequest(f"--sref {text}: the file cannot be read") from None


def _pixels(text: str, data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            return image_to_array(image)  # (H, W, 3) uint8
    except (UnidentifiedImageError, OSError, ValueError):
        raise UnsupportedRequest(f"--sref {text}: not a readable image") from None
