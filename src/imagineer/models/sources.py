"""Reading a model source offline: a diffusers folder, a single-file checkpoint, a LoRA, or a
repository already in the Hugging Face cache; its family, defaults, licence and content hash.

Nothing here downloads. A missing file is an error that names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagineer.models.catalog import CatalogError, FileStamp, LoraRef, ModelEntry, check_name
from imagineer.models.families import SINGLE_FILE_TYPES, Family, family, family_of_pipeline

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")
CONFIG_SUFFIXES = (".json", ".txt", ".model")  # configs, tokenizer vocabularies and merges
LICENCE_NAMES = ("LICENSE", "LICENCE", "LICENSE.md", "LICENSE.txt", "LICENCE.txt", "LICENSE.MD")
MAX_LICENCE_CHARS = 64_000
VARIANT_RE = re.compile(r"\.(fp16|bf16|fp32)\.")
HashProgress = Callable[[int, int], None]  # (bytes hashed, bytes in all)


@dataclass(frozen=True)
class AddOptions:
    """What `imagineer models add` was told beside the source."""

    name: str | None = None  # default: the folder or file name
    family: str | None = None  # override the detected family
    config: Path | None = None  # single file: a diffusers folder to take configs from
    hf_cache: Path | None = None  # where the Hugging Face cache is (default: HF's own)
    base_side: int | None = None
    steps: int | None = None
    guidance: float | None = None
    loras: tuple[LoraRef, ...] = ()
    description: str = ""
    ip_adapter: str | None = None  # a registered IP-Adapter for --sref
    image_encoder: Path | None = None  # IP-Adapter file: its CLIP image encoder folder


def entry_for(source: str, options: AddOptions, progress: HashProgress | None = None) -> ModelEntry:
    """The registry entry for `source`: a path to a folder or file, or `hf:ORG/NAME`."""
    if source.startswith("hf:"):
        return _hf_entry(source[3:], options, progress)
    path = Path(source).expanduser()
    if not path.exists():
        hint = ""
        if re.fullmatch(r"[\w.-]+/[\w.-]+", source):
            hint = f" (for a model in the Hugging Face cache, write hf:{source})"
        raise CatalogError(f"no such file or folder: {path}{hint}")
    path = path.resolve()
    if path.is_dir():
        return _folder_entry(path, "folder", options, progress)
    from imagineer.models import adapters

    if adapters.is_adapter_file(path):
        return adapters.adapter_entry(
            path,
            name=options.name,
            image_encoder=options.image_encoder,
            description=options.description,
            hash_files=hash_files,
            progress=progress,
        )
    if is_lora_file(path):
        return _lora_entry(path, options, progress)
    return _single_file_entry(path, options, progress)


# --- diffusers folders -------------------------------------------------------------------------


def _folder_entry(
    path: Path,
    source: str,
    options: AddOptions,
    progress: HashProgress | None,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
) -> ModelEntry:
    index = read_model_index(path)
    class_name = str(index["_class_name"])
    fam = _family(options.family, class_name)
    files, variant = pipeline_files(path, index)
    digest, stamps = hash_files(path, files, progress)
    return _entry(
        options,
        default_name=repo_id.split("/")[-1] if repo_id else path.name,
        source=source,
        path=path,
        fam=fam,
        pipeline=class_name,
        digest=digest,
        stamps=stamps,
        licence=licence_of(path),
        base_side=_configured_side(path, index) or fam.base_side,
        steps_guidance=_distilled_defaults(path, fam),
        repo_id=repo_id,
        revision=revision,
        variant=variant,
    )


def read_model_index(path: Path) -> dict[str, Any]:
    """model_index.json of a diffusers folder, or an error saying what the folder lacks."""
    index_path = path / "model_index.json"
    if not index_path.is_file():
        single = path / "config.json"
        what = ""
        if single.is_file():
            kind = json.loads(single.read_text()).get("_class_name", "one model")
            what = f"; it holds a single {kind}, not a whole pipeline"
        raise CatalogError(
            f"{path} is not a diffusers pipeline folder: missing model_index.json{what}"
        )
    data: dict[str, Any] = json.loads(index_path.read_text())
    if "_class_name" not in data:
        raise CatalogError(f"{index_path} has no _class_name: is it a diffusers pipeline?")
    return data


def components(index: dict[str, Any]) -> list[str]:
    """The component folders model_index.json lists (those with a library and class)."""
    return [
        key
        for key, value in index.items()
        if not key.startswith("_")
        and isinstance(value, list)
        and len(value) == 2
        and value[0] is not None
    ]


def pipeline_files(path: Path, index: dict[str, Any]) -> tuple[list[Path], str | None]:
    """The files diffusers reads for this pipeline, and the weight variant it must ask for.

    Per component: configs and tokenizer files, plus the weights diffusers would pick —
    safetensors over .bin, plain over variants (unless only a variant is there).
    """
    files = [path / "model_index.json"]
    variants: set[str] = set()
    for name in components(index):
        folder = path / name
        if not folder.is_dir():
            raise CatalogError(
                f"{path}: model_index.json lists component {name!r} but the folder "
                f"{folder} is missing"
            )
        found = sorted(p for p in folder.iterdir() if p.is_file())
        files += [p for p in found if p.suffix in CONFIG_SUFFIXES]
        weights, variant = _pick_weights([p for p in found if p.suffix in WEIGHT_SUFFIXES])
        files += weights
        if variant:
            variants.add(variant)
    if len(variants) > 1:
        raise CatalogError(f"{path}: components hold different weight variants {variants}")
    return files, (variants.pop() if variants else None)


def _pick_weights(weights: Sequence[Path]) -> tuple[list[Path], str | None]:
    plain = [p for p in weights if not VARIANT_RE.search(p.name)]
    chosen, variant = plain, None
    if not plain and weights:
        variant = VARIANT_RE.search(weights[0].name).group(1)  # type: ignore[union-attr]
        chosen = [p for p in weights if f".{variant}." in p.name]
    safetensors = [p for p in chosen if p.suffix == ".safetensors"]
    return (safetensors or chosen), variant


def _configured_side(path: Path, index: dict[str, Any]) -> int | None:
    """The trained side from the denoiser's sample_size and the VAE's scale, when both say."""
    vae = _config(path / "vae" / "config.json")
    denoiser = _config(path / "unet" / "config.json") or _config(
        path / "transformer" / "config.json"
    )
    sample = denoiser.get("sample_size") if denoiser else None
    if not vae or not isinstance(sample, int):
        return None
    blocks = vae.get("block_out_channels") or vae.get("encoder_block_out_channels")
    if not isinstance(blocks, list) or not blocks:
        return None
    side = sample * 2 ** (len(blocks) - 1)
    return side if 32 <= side <= 4096 else None


def _distilled_defaults(path: Path, fam: Family) -> tuple[int, float]:
    """FLUX.1 schnell (no guidance embedding) runs at 4 steps without guidance."""
    if fam.name == "flux":
        cfg = _config(path / "transformer" / "config.json")
        if cfg and cfg.get("guidance_embeds") is False:
            return 4, 0.0
    return fam.default_steps, fam.default_guidance


def _config(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# --- single files and LoRAs --------------------------------------------------------------------


def tensor_names(path: Path) -> list[str]:
    """The tensor names in a .safetensors file; CatalogError when it cannot be read as one."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except SafetensorError as err:
        raise CatalogError(f"{path.name} cannot be read as a checkpoint: {err}") from None


def is_lora_file(path: Path) -> bool:
    """A safetensors file whose tensor names are LoRA names (lora_A/B, lora_up/down)."""
    if path.suffix != ".safetensors":
        return False
    keys = tensor_names(path)
    return bool(keys) and all("lora" in k or k.endswith(".alpha") for k in keys)


def _lora_entry(path: Path, options: AddOptions, progress: HashProgress | None) -> ModelEntry:
    digest, stamps = hash_files(path.parent, [path], progress)
    return attachment_entry(
        path,
        name=options.name or path.stem,
        source="lora",
        hashed=(digest, stamps),
        description=options.description or "LoRA",
        family=options.family or "",
        licence=_safetensors_licence(path),
    )


def attachment_entry(
    path: Path,
    *,
    name: str,
    source: str,
    hashed: tuple[str, tuple[FileStamp, ...]],
    description: str,
    family: str = "",
    licence: str = "",
    image_encoder: str | None = None,
) -> ModelEntry:
    """An entry for weights that attach to a model (a LoRA, an IP-Adapter): no pipeline,
    sizes or defaults of their own. `hashed` is hash_files' (digest, stamps)."""
    digest, stamps = hashed
    return ModelEntry(
        name=check_name(name),
        source=source,
        path=str(path),
        family=family,
        pipeline="",
        capabilities=(),
        base_side=0,
        size_multiple=0,
        default_steps=0,
        default_guidance=0.0,
        content_hash=digest,
        files=stamps,
        licence=licence,
        image_encoder=image_encoder,
        description=description,
        added_at=_now(),
    )


def _single_file_entry(
    path: Path, options: AddOptions, progress: HashProgress | None
) -> ModelEntry:
    if path.suffix not in WEIGHT_SUFFIXES:
        raise CatalogError(
            f"{path.name}: expected a diffusers folder or a checkpoint file "
            f"({', '.join(WEIGHT_SUFFIXES)})"
        )
    model_type = single_file_type(path)
    if options.family is not None:
        fam = family(options.family)
        class_name = fam.pipelines[0]
    elif model_type in SINGLE_FILE_TYPES:
        fam_name, class_name = SINGLE_FILE_TYPES[model_type]
        fam = family(fam_name)
    else:
        raise CatalogError(
            f"{path.name} looks like a {model_type!r} checkpoint, which imagineer cannot load "
            "from a single file: convert it to a diffusers folder, or pass --family"
        )
    config = single_file_config(path, model_type, options)
    digest, stamps = hash_files(path.parent, [path], progress)
    return _entry(
        options,
        default_name=path.stem,
        source="single-file",
        path=path,
        fam=fam,
        pipeline=class_name,
        digest=digest,
        stamps=stamps,
        licence=(_safetensors_licence(path), _licence_file(path.parent)),
        base_side=_configured_side(config, read_model_index(config)) or fam.base_side,
        steps_guidance=(fam.default_steps, fam.default_guidance),
        config=str(config),
    )


def single_file_type(path: Path) -> str:
    """diffusers' guess of what an original-format checkpoint is ("v1", "xl_base", …)."""
    from diffusers.loaders.single_file_utils import (
        infer_diffusers_model_type,
        load_single_file_checkpoint,
    )

    try:
        checkpoint = load_single_file_checkpoint(str(path), local_files_only=True)
    except Exception as err:  # safetensors and torch raise many kinds for a bad file
        raise CatalogError(f"{path.name} cannot be read as a checkpoint: {err}") from None
    model_type: str = infer_diffusers_model_type(checkpoint)
    return model_type


def single_file_config(path: Path, model_type: str, options: AddOptions) -> Path:
    """The diffusers folder whose configs (and missing parts) a single file loads with.

    --config wins; else diffusers' reference repository for the model type, when it is in
    the Hugging Face cache. Never downloaded: a missing config is an error saying what to do.
    """
    if options.config is not None:
        config = options.config.expanduser().resolve()
        read_model_index(config)
        return config
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS

    reference = DIFFUSERS_DEFAULT_PIPELINE_PATHS.get(model_type, {})
    repo = reference.get("pretrained_model_name_or_path")
    if repo is None:
        raise CatalogError(f"{path.name}: pass --config DIR, a diffusers folder of its family")
    try:
        return cached_snapshot(repo, options.hf_cache)
    except CatalogError:
        raise CatalogError(
            f"{path.name} is a {model_type!r} checkpoint; loading it needs the configs of "
            f"{repo}, which are not in the Hugging Face cache. Pass --config DIR with a "
            "diffusers folder of the same model (its configs and tokenizer are used), or put "
            f"{repo} in the cache on a machine with network"
        ) from None


def _safetensors_licence(path: Path) -> str:
    """The licence named in safetensors metadata (Stability's model spec), if any."""
    if path.suffix != ".safetensors":
        return ""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return meta.get("modelspec.license", "")


# --- the Hugging Face cache --------------------------------------------------------------------


def cached_snapshot(repo_id: str, cache_dir: Path | None, revision: str | None = None) -> Path:
    """The local snapshot folder of `repo_id` in the Hugging Face cache; never downloads."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir else None,
            local_files_only=True,
        )
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as err:
        where = cache_dir or "the default Hugging Face cache (HF_HUB_CACHE)"
        raise CatalogError(
            f"{repo_id} is not in {where} ({type(err).__name__}); imagineer never downloads: "
            "fetch it where there is network, or register a local folder instead"
        ) from None
    return Path(folder)


def _hf_entry(repo_id: str, options: AddOptions, progress: HashProgress | None) -> ModelEntry:
    revision = None
    if "@" in repo_id:
        repo_id, revision = repo_id.split("@", 1)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise CatalogError(f"hf:{repo_id}: write hf:ORG/NAME (optionally @REVISION)")
    folder = cached_snapshot(repo_id, options.hf_cache, revision)
    return _folder_entry(
        folder, "hf-cache", options, progress, repo_id=repo_id, revision=folder.name
    )


# --- shared ------------------------------------------------------------------------------------


def hash_files(
    root: Path, files: Sequence[Path], progress: HashProgress | None = None
) -> tuple[str, tuple[FileStamp, ...]]:
    """sha256 over (relative name, bytes) of each file in name order, and their stamps."""
    ordered = sorted(files, key=lambda p: os.path.relpath(p, root))
    total = sum(p.stat().st_size for p in ordered)
    digest, done, stamps = hashlib.sha256(), 0, []
    for file in ordered:
        rel = Path(os.path.relpath(file, root)).as_posix()  # "../x" for an IP-Adapter's encoder
        digest.update(rel.encode() + b"\0")
        with open(file, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        stat = file.stat()
        stamps.append(FileStamp(rel, stat.st_size, stat.st_mtime_ns))
    return digest.hexdigest(), tuple(stamps)


def changed_files(entry: ModelEntry) -> list[str]:
    """Files of `entry` that are gone or differ in size or time since they were hashed."""
    root = Path(entry.path) if Path(entry.path).is_dir() else Path(entry.path).parent
    changed = []
    for stamp in entry.files:
        file = root / stamp.path
        try:
            stat = file.stat()
        except FileNotFoundError:
            changed.append(f"{stamp.path} (missing)")
            continue
        if (stat.st_size, stat.st_mtime_ns) != (stamp.size, stamp.mtime_ns):
            changed.append(stamp.path)
    return changed


def rehash(entry: ModelEntry) -> ModelEntry:
    """`entry` with its hash and stamps taken again from the files on disk now."""
    from dataclasses import replace

    root = Path(entry.path) if Path(entry.path).is_dir() else Path(entry.path).parent
    missing = [s.path for s in entry.files if not (root / s.path).is_file()]
    if missing:
        raise CatalogError(
            f"model {entry.name!r}: missing {', '.join(missing)} under {root}; "
            f"restore the files or `imagineer models remove {entry.name}`"
        )
    digest, stamps = hash_files(root, [root / s.path for s in entry.files])
    return replace(entry, content_hash=digest, files=stamps)


def licence_of(path: Path) -> tuple[str, str]:
    """(licence name from the model card, licence file text) of a folder; empty when absent."""
    return _card_licence(path / "README.md"), _licence_file(path)


def _card_licence(readme: Path) -> str:
    if not readme.is_file():
        return ""
    text = readme.read_text(encoding="utf-8", errors="replace")
    match = re.match(r"---\n(.*?)\n---", text, re.S)
    if not match:
        return ""
    fields = dict(re.findall(r"^(license(?:_name)?):\s*(.+)$", match.group(1), re.M))
    return (fields.get("license_name") or fields.get("license") or "").strip().strip("'\"")


def _licence_file(folder: Path) -> str:
    for name in LICENCE_NAMES:
        file = folder / name
        if file.is_file():
            return file.read_text(encoding="utf-8", errors="replace")[:MAX_LICENCE_CHARS]
    return ""


def _family(override: str | None, class_name: str) -> Family:
    if override is None:
        try:
            return family_of_pipeline(class_name)
        except ValueError as err:
            raise CatalogError(str(err)) from None
    fam = family(override)
    if class_name not in fam.pipelines:
        raise CatalogError(
            f"--family {override}: this folder holds a {class_name}, which belongs to "
            f"{family_of_pipeline(class_name).name}"
        )
    return fam


def _entry(
    options: AddOptions,
    *,
    default_name: str,
    source: str,
    path: Path,
    fam: Family,
    pipeline: str,
    digest: str,
    stamps: tuple[FileStamp, ...],
    licence: tuple[str, str],
    base_side: int,
    steps_guidance: tuple[int, float],
    config: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    variant: str | None = None,
) -> ModelEntry:
    name = options.name or _safe_name(default_name)
    steps, guidance = steps_guidance
    return ModelEntry(
        name=check_name(name),
        source=source,
        path=str(path),
        family=fam.name,
        pipeline=pipeline,
        capabilities=tuple(sorted(c.value for c in fam.capabilities)),
        base_side=_check_side(options.base_side or base_side, fam),
        size_multiple=fam.size_multiple,
        default_steps=_check_steps(options.steps or steps),
        default_guidance=options.guidance if options.guidance is not None else guidance,
        content_hash=digest,
        files=stamps,
        licence=licence[0],
        licence_text=licence[1],
        config=config,
        repo_id=repo_id,
        revision=revision,
        variant=variant,
        loras=options.loras,
        ip_adapter=options.ip_adapter,
        frames=fam.frames,
        fps=fam.fps,
        description=options.description or fam.description,
        added_at=_now(),
    )


def _safe_name(stem: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:64]
    return name or "model"


def _check_side(side: int, fam: Family) -> int:
    if side < fam.size_multiple or side % fam.size_multiple:
        raise CatalogError(
            f"size {side}: use a multiple of {fam.size_multiple} for family {fam.name}"
        )
    return side


def _check_steps(steps: int) -> int:
    if steps < 1:
        raise CatalogError(f"steps {steps}: use at least 1")
    return steps


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
