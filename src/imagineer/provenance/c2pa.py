"""Signed C2PA manifests on outputs: build and sign with c2pa-python, read and validate them back.

A generation gets `c2pa.created` with digital source type trainedAlgorithmicMedia. A variation,
upscale, remix or animation is an edit: the SDK's EDIT intent adds `c2pa.opened` pointing at
the parent (a `parentOf` ingredient, further inputs are `componentOf`), then `c2pa.edited`
follows, compositeWithTrainedAlgorithmicMedia when the user's own media went in. Custom
assertions carry the recipe, the model and its hash, and whether the pixels hold a watermark.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import c2pa

from imagineer.provenance.iptc import COMPOSITE_WITH_TRAINED, TRAINED_ALGORITHMIC_MEDIA
from imagineer.provenance.keys import SigningIdentity
from imagineer.provenance.watermark import payload_for_recipe

Action: TypeAlias = Literal["created", "edited"]
ValidationState: TypeAlias = Literal["Valid", "Invalid", "Trusted"]

RECIPE_LABEL: Final = "org.imagineer.recipe"
GENERATOR_LABEL: Final = "org.imagineer.generator"
WATERMARK_LABEL: Final = "org.imagineer.watermark"
WATERMARK_METHOD: Final = "imagineer-ss2"  # provenance.watermark: coded spread spectrum
UNTRUSTED_CODE: Final = "signingCredential.untrusted"
CONTENT_CHANGED_CODES: Final = frozenset(
    {"assertion.dataHash.mismatch", "assertion.bmffHash.mismatch", "assertion.boxesHash.mismatch"}
)
MIME_TYPES: Final = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
}
_NOT_SIGNABLE: Final = {".webm": "WebM", ".mkv": "Matroska"}


class ProvenanceError(ValueError):
    """A manifest that cannot be built or signed; the message says what to change."""


@dataclass(frozen=True)
class Ingredient:
    """An input of an edit as its manifest records it."""

    title: str
    relationship: str  # "parentOf", "componentOf" or "inputTo"
    format: str
    active_manifest: str | None  # the ingredient's own manifest label, when it had one


@dataclass(frozen=True)
class ManifestReport:
    """What a file's C2PA manifest says and whether it validates."""

    present: bool
    validation_state: ValidationState | None = None
    untrusted_signer: bool = False  # valid signature, but the signer is in no trust list
    signer: str = ""  # the signing certificate's common name and issuer
    claim_generator: str = ""
    actions: tuple[str, ...] = ()
    digital_source_type: str | None = None
    recipe_json: str | None = None
    model: str | None = None
    model_hash: str | None = None
    watermarked: bool | None = None
    watermark_payload: int | None = None
    watermark_note: str = ""  # why the signer left the pixels unmarked, when it did
    ingredients: tuple[Ingredient, ...] = ()
    failure_codes: tuple[str, ...] = ()
    error: str | None = None  # why a present manifest could not be read, if it could not

    @property
    def valid(self) -> bool:
        return self.validation_state in ("Valid", "Trusted")

    @property
    def content_changed(self) -> bool:
        """The signed hash of the content no longer matches: edited after signing."""
        return bool(CONTENT_CHANGED_CODES.intersection(self.failure_codes))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mime_type(path: Path) -> str:
    """The MIME type c2pa signs `path` as; ProvenanceError for formats C2PA cannot hold."""
    suffix = Path(path).suffix.lower()
    if suffix in _NOT_SIGNABLE:
        raise ProvenanceError(
            f"{Path(path).name}: C2PA cannot be embedded in {_NOT_SIGNABLE[suffix]}; "
            "write MP4 or GIF to sign a clip"
        )
    if suffix not in MIME_TYPES:
        raise ProvenanceError(
            f"{Path(path).name}: cannot sign {suffix or 'a file without suffix'}; "
            f"use one of {', '.join(sorted(MIME_TYPES))}"
        )
    return MIME_TYPES[suffix]


def sign_file(
    src: Path,
    dst: Path,
    *,
    identity: SigningIdentity,
    action: Action,
    recipe_json: str,
    model: str,
    model_hash: str,
    parents: Sequence[Path] = (),
    mixes_user_media: bool = False,
    watermarked: bool = True,
    watermark_note: str = "",
) -> Path:
    """Sign `src` into `dst` (they may be the same file) with a manifest for this output.

    `watermarked` says whether the pixels carry imagineer's mark; when they do not,
    `watermark_note` says why (e.g. "turned off in settings") and the manifest records it.
    """
    # 1. check inputs
    src, dst = Path(src), Path(dst)
    mime = mime_type(src)
    if mime_type(dst) != mime:
        raise ProvenanceError(f"src {src.name} and dst {dst.name} must have the same format")
    # 2. the manifest, 3. the signer, 4. sign into a temporary file, then move it into place
    with _builder(
        dst.name,
        mime,
        src.name,
        action=action,
        recipe_json=recipe_json,
        model=model,
        model_hash=model_hash,
        parents=parents,
        mixes_user_media=mixes_user_media,
        watermarked=watermarked,
        watermark_note=watermark_note,
    ) as builder:
        _sign_atomic(builder, _signer(identity), mime, src, dst)
    return dst


def sign_bytes(
    data: bytes,
    path: Path,
    *,
    identity: SigningIdentity,
    action: Action,
    recipe_json: str,
    model: str,
    model_hash: str,
    parents: Sequence[Path] = (),
    mixes_user_media: bool = False,
    watermarked: bool = True,
    watermark_note: str = "",
) -> bytes:
    """`data`, the bytes of a file about to be written at `path`, signed as `sign_file` signs
    them: a writer that encodes in memory then writes the file once, signed."""
    # 1. check inputs
    name = Path(path).name
    mime = mime_type(Path(path))
    # 2. the manifest, 3. the signer, 4. sign from memory into memory
    signed = io.BytesIO()
    with _builder(
        name,
        mime,
        name,
        action=action,
        recipe_json=recipe_json,
        model=model,
        model_hash=model_hash,
        parents=parents,
        mixes_user_media=mixes_user_media,
        watermarked=watermarked,
        watermark_note=watermark_note,
    ) as builder:
        builder.sign(_signer(identity), mime, io.BytesIO(data), signed)
    return signed.getvalue()


@contextmanager
def _builder(
    title: str,
    mime: str,
    source_name: str,
    *,
    action: Action,
    recipe_json: str,
    model: str,
    model_hash: str,
    parents: Sequence[Path],
    mixes_user_media: bool,
    watermarked: bool,
    watermark_note: str,
) -> Iterator[c2pa.Builder]:
    """The manifest builder for one output (checked recipe and action, ingredients when
    edited), closed afterwards; a c2pa error inside becomes a ProvenanceError naming the file."""
    recipe = _recipe_object(recipe_json)
    check_action(action, parents)
    manifest = _manifest(title, mime, action, recipe, model, model_hash, mixes_user_media)
    manifest["assertions"].append(_watermark_assertion(recipe_json, watermarked, watermark_note))
    builder = c2pa.Builder(manifest, _context(None))
    try:
        if action == "edited":
            builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            _add_ingredients(builder, parents)
        yield builder
    except c2pa.C2paError as err:
        raise ProvenanceError(f"signing {source_name} failed: {err}") from err
    finally:
        builder.close()


def _signer(identity: SigningIdentity) -> c2pa.Signer:
    return c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(
            identity.algorithm.encode(), identity.cert_chain_pem, identity.key_pem, None
        )
    )


def read_manifest(path: Path, *, trust_anchors: bytes | None = None) -> ManifestReport:
    """Read and validate the manifest of `path`; `trust_anchors` (PEM) lets it read Trusted."""
    path = Path(path)
    mime = MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        return ManifestReport(
            present=False, error=f"{path.suffix or 'no suffix'} files cannot carry a C2PA manifest"
        )
    try:
        with (
            path.open("rb") as stream,
            c2pa.Reader(mime, stream, None, _context(trust_anchors)) as r,
        ):
            store = json.loads(r.json())
            state = r.get_validation_state()
    except c2pa.C2paError as err:
        if "ManifestNotFound" in type(err).__name__ or "ManifestNotFound" in str(err):
            return ManifestReport(present=False)
        if _has_jumbf_label(path):  # a manifest is there but broken: that is a finding
            return ManifestReport(present=True, validation_state="Invalid", error=str(err))
        return ManifestReport(present=False, error=f"unreadable as {mime}: {err}")
    return _report(store, state)


def _has_jumbf_label(path: Path) -> bool:
    """Whether the bytes hold a C2PA manifest store's JUMBF label (read in 1 MiB blocks)."""
    tail = b""
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            if b"c2pa" in tail + block:
                return True
            tail = block[-3:]
    return False


def check_action(action: str, parents: Sequence[Path]) -> None:
    """ProvenanceError unless `action` and `parents` make a manifest (call before heavy work)."""
    if action not in ("created", "edited"):
        raise ProvenanceError(f"action={action!r}: use 'created' or 'edited'")
    if action == "created" and parents:
        raise ProvenanceError("action='created' takes no parents: use 'edited' for derived outputs")
    if action == "edited" and not parents:
        raise ProvenanceError("action='edited' needs parents=[the file it was made from]")
    for parent in parents:
        mime_type(parent)
        if not Path(parent).is_file():
            raise ProvenanceError(f"parent {parent} does not exist")


def _recipe_object(recipe_json: str) -> dict[str, Any]:
    try:
        recipe = json.loads(recipe_json)
    except (TypeError, json.JSONDecodeError) as err:
        raise ProvenanceError(f"recipe_json is not JSON: {err}") from err
    if not isinstance(recipe, dict):
        raise ProvenanceError(f"recipe_json must be a JSON object, got {type(recipe).__name__}")
    return recipe


def _manifest(
    title: str,
    mime: str,
    action: Action,
    recipe: dict[str, Any],
    model: str,
    model_hash: str,
    mixes_user_media: bool,
) -> dict[str, Any]:
    from imagineer import __version__

    agent = {"name": "imagineer", "version": __version__}
    source = COMPOSITE_WITH_TRAINED if mixes_user_media else TRAINED_ALGORITHMIC_MEDIA
    step = {
        "action": f"c2pa.{action}",
        "digitalSourceType": source,
        "softwareAgent": agent,
        "parameters": {"org.imagineer.model": model, "org.imagineer.kind": recipe.get("kind", "")},
    }
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [step]}},
            {"label": RECIPE_LABEL, "data": recipe},
            {"label": GENERATOR_LABEL, "data": {"model": model, "model_hash": model_hash}},
        ],
    }


def _watermark_assertion(recipe_json: str, watermarked: bool, note: str) -> dict[str, Any]:
    """Whether the pixels carry a mark, and its payload (from the recipe) or why there is none."""
    data: dict[str, Any] = {"embedded": watermarked}
    if watermarked:
        data |= {"method": WATERMARK_METHOD, "payload": f"{payload_for_recipe(recipe_json):08x}"}
    else:
        data["reason"] = note or "not given"
    return {"label": WATERMARK_LABEL, "data": data}


def _add_ingredients(builder: c2pa.Builder, parents: Sequence[Path]) -> None:
    for index, parent in enumerate(parents):
        relationship = "parentOf" if index == 0 else "componentOf"
        with Path(parent).open("rb") as stream:
            builder.add_ingredient(
                {"title": Path(parent).name, "relationship": relationship},
                mime_type(parent),
                stream,
            )


def _context(trust_anchors: bytes | None) -> c2pa.Context:
    settings: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
    if trust_anchors is not None:
        settings["trust"] = {"trust_anchors": trust_anchors.decode("ascii")}
    return c2pa.Context(c2pa.Settings.from_dict(settings))


def _sign_atomic(
    builder: c2pa.Builder, signer: c2pa.Signer, mime: str, src: Path, dst: Path
) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with src.open("rb") as source, tmp.open("w+b") as target:
            builder.sign(signer, mime, source, target)
        shutil.copymode(src, tmp)  # mkstemp makes it owner-only; keep the unsigned file's mode
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _report(store: dict[str, Any], state: str | None) -> ManifestReport:
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    assertions = {a.get("label"): a.get("data") for a in active.get("assertions", [])}
    actions = [
        step
        for label, data in assertions.items()
        if str(label).startswith("c2pa.actions") and isinstance(data, dict)
        for step in data.get("actions", [])
    ]
    codes = _failure_codes(store)
    signature = active.get("signature_info", {})
    generator = assertions.get(GENERATOR_LABEL) or {}
    mark = assertions.get(WATERMARK_LABEL) or {}
    recipe = assertions.get(RECIPE_LABEL)
    return ManifestReport(
        present=True,
        validation_state=_state(state),
        untrusted_signer=UNTRUSTED_CODE in codes,
        signer=", ".join(str(signature[k]) for k in ("common_name", "issuer") if signature.get(k)),
        claim_generator=" ".join(
            f"{g.get('name', '')} {g.get('version', '')}".strip()
            for g in active.get("claim_generator_info", [])[:1]
        ),
        actions=tuple(str(step.get("action", "")) for step in actions),
        digital_source_type=next(
            (step["digitalSourceType"] for step in actions if "digitalSourceType" in step), None
        ),
        recipe_json=json.dumps(recipe, sort_keys=True) if isinstance(recipe, dict) else None,
        model=generator.get("model"),
        model_hash=generator.get("model_hash"),
        watermarked=bool(mark.get("embedded")) if mark else None,
        watermark_payload=int(mark["payload"], 16) if mark.get("payload") else None,
        watermark_note=str(mark.get("reason", "")),
        ingredients=tuple(_ingredient(i) for i in active.get("ingredients", [])),
        failure_codes=codes,
    )


def _state(state: str | None) -> ValidationState:
    """The SDK's state; anything it may add later counts as not valid."""
    if state == "Trusted":
        return "Trusted"
    return "Valid" if state == "Valid" else "Invalid"


def _ingredient(data: dict[str, Any]) -> Ingredient:
    return Ingredient(
        title=str(data.get("title", "")),
        relationship=str(data.get("relationship", "")),
        format=str(data.get("format", "")),
        active_manifest=data.get("active_manifest"),
    )


def _failure_codes(store: dict[str, Any]) -> tuple[str, ...]:
    results = store.get("validation_results", {}).get("activeManifest", {})
    codes = [str(item.get("code", "")) for item in results.get("failure", [])]
    codes += [str(item.get("code", "")) for item in store.get("validation_status", [])]
    return tuple(dict.fromkeys(code for code in codes if code))
