"""IP-Adapters for style references (--sref): registering one with its CLIP image encoder,
loading it into a Stable Diffusion pipeline offline, and turning reference images into the
image embeddings the pipeline takes.

An IP-Adapter adds image cross-attention to a UNet; a reference image is read by a CLIP vision
model into an embedding that the adapter projects into extra tokens. Its file holds
`image_proj.*` and `ip_adapter.*` tensors; the image encoder is a transformers
CLIPVisionModelWithProjection folder (config.json and weights), by convention the folder
`image_encoder` beside the adapter file, as the IP-Adapter releases lay them out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imagineer.engines.base import EngineError, GenerationInput
from imagineer.models.catalog import CatalogError, ModelEntry

ADAPTER_SUFFIXES = (".safetensors", ".bin")
ENCODER_FOLDER = "image_encoder"  # where the IP-Adapter releases keep the encoder
ENCODER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
FAMILIES = ("sd15", "sd15-inpaint", "sdxl")  # UNet pipelines diffusers' IPAdapterMixin loads into
SCALE_PER_WEIGHT = 0.6  # adapter scale at --sw 100: the scale diffusers' IP-Adapter guide uses


def is_adapter_file(path: Path) -> bool:
    """A .safetensors file whose tensors are all `image_proj.*` or `ip_adapter.*`, or a .bin
    file holding those two dicts (the IP-Adapter releases' two formats)."""
    if path.suffix == ".bin":
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except (OSError, RuntimeError, ValueError):
            return False
        return isinstance(data, dict) and set(data) == {"image_proj", "ip_adapter"}
    if path.suffix != ".safetensors":
        return False
    from imagineer.models.sources import tensor_names

    keys = tensor_names(path)
    return bool(keys) and all(k.startswith(("image_proj.", "ip_adapter.")) for k in keys)


def adapter_entry(
    path: Path,
    *,
    name: str | None,
    image_encoder: Path | None,
    description: str,
    hash_files: Any,
    progress: Any = None,
) -> ModelEntry:
    """The registry entry of an IP-Adapter file and its image encoder folder (both hashed)."""
    from imagineer.models.sources import attachment_entry

    if path.suffix not in ADAPTER_SUFFIXES:
        raise CatalogError(f"{path.name}: an IP-Adapter is a .safetensors or .bin file")
    encoder = (image_encoder or path.parent / ENCODER_FOLDER).expanduser().resolve()
    files = [path, *encoder_files(encoder, given=image_encoder is not None, adapter=path)]
    return attachment_entry(
        path,
        name=name or path.stem,
        source="ip-adapter",
        hashed=hash_files(path.parent, files, progress),
        description=description or "IP-Adapter (style references)",
        image_encoder=str(encoder),
    )


def encoder_files(folder: Path, *, given: bool, adapter: Path) -> list[Path]:
    """config.json and the weights of a CLIPVisionModelWithProjection folder."""
    if not folder.is_dir():
        how = (
            f"--image-encoder {folder} is not a folder"
            if given
            else f"no {ENCODER_FOLDER}/ folder beside it"
        )
        raise CatalogError(
            f"IP-Adapter {adapter.name} needs its CLIP image encoder ({how}): pass "
            "--image-encoder DIR, a folder with the config.json and model.safetensors of a "
            "CLIPVisionModelWithProjection"
        )
    config = folder / "config.json"
    if not config.is_file():
        raise CatalogError(f"image encoder {folder}: missing config.json")
    kinds = json.loads(config.read_text()).get("architectures") or []
    if "CLIPVisionModelWithProjection" not in kinds:
        raise CatalogError(
            f"image encoder {folder} holds {kinds or 'an unnamed model'}: an IP-Adapter needs "
            "a CLIPVisionModelWithProjection"
        )
    weights = [folder / name for name in ENCODER_WEIGHTS if (folder / name).is_file()]
    if not weights:
        raise CatalogError(f"image encoder {folder}: missing {' or '.join(ENCODER_WEIGHTS)}")
    return [config, weights[0]]


def check_fits(model: ModelEntry, adapter: ModelEntry) -> None:
    """Refuse attaching an IP-Adapter to a family or UNet width it cannot load into."""
    if adapter.source != "ip-adapter":
        raise CatalogError(f"--ip-adapter {adapter.name}: that is not a registered IP-Adapter")
    if model.family not in FAMILIES:
        raise CatalogError(
            f"--ip-adapter: model {model.name!r} is {model.family}; IP-Adapters load into "
            f"{', '.join(FAMILIES)} models"
        )
    width = _unet_cross_width(model)
    wanted = _adapter_cross_width(Path(adapter.path))
    if width is not None and wanted is not None and width != wanted:
        raise CatalogError(
            f"IP-Adapter {adapter.name!r} is for a UNet with cross-attention width {wanted}; "
            f"model {model.name!r} has {width}: use the adapter made for its base model"
        )


def _unet_cross_width(model: ModelEntry) -> int | None:
    folder = Path(model.config or model.path)
    config = folder / "unet" / "config.json"
    if not config.is_file():
        return None
    value = json.loads(config.read_text()).get("cross_attention_dim")
    return value if isinstance(value, int) else None


def _adapter_cross_width(path: Path) -> int | None:
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        names = list(f.keys())
        keys = [k for k in names if k.endswith(".to_k_ip.weight")]
        return int(f.get_slice(keys[0]).get_shape()[1]) if keys else None


@dataclass
class LoadedAdapter:
    """An IP-Adapter in memory: its state dict (loaded into the UNet when a style call needs
    it) and the image encoder that reads the references."""

    name: str
    state: dict[str, dict[str, torch.Tensor]]  # {"image_proj": …, "ip_adapter": …}; {}: in UNet
    encoder: Any  # CLIPVisionModelWithProjection
    processor: Any  # CLIPImageProcessor
    hidden_states: bool  # IP-Adapter Plus reads the encoder's penultimate hidden states
    in_unet: bool = False


def load_adapter(entry: ModelEntry, dtype: torch.dtype, device: str) -> LoadedAdapter:
    """The adapter's weights and image encoder from local files only."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    path = Path(entry.path)
    try:
        state = _read_state(path)
        encoder = CLIPVisionModelWithProjection.from_pretrained(
            str(entry.image_encoder), local_files_only=True, dtype=dtype
        )
    except (OSError, ValueError) as err:
        raise EngineError(f"IP-Adapter {entry.name!r} failed to load: {err}") from None
    encoder.eval().to(device)
    side: Any = encoder.config.image_size
    processor = CLIPImageProcessor(size=int(side), crop_size=int(side))
    plus = "proj.weight" not in state["image_proj"]  # plain IP-Adapter: one linear projection
    return LoadedAdapter(entry.name, state, encoder, processor, hidden_states=plus)


def _read_state(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        flat = load_file(str(path))
        state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for key, value in flat.items():
            part, _, rest = key.partition(".")
            state[part][rest] = value
        return state
    loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict) or not {"image_proj", "ip_adapter"} <= set(loaded):
        raise ValueError(f"{path.name} holds no image_proj and ip_adapter weights")
    return {"image_proj": loaded["image_proj"], "ip_adapter": loaded["ip_adapter"]}


def put_in_unet(pipe: Any, adapter: LoadedAdapter) -> None:
    """Load the adapter's image cross-attention into the pipeline's UNet (shared by every
    pipeline made from it); a no-op when it is there already. The UNet then holds the weights,
    so the adapter lets go of its own copy (on a GPU a second one in CPU memory)."""
    if adapter.in_unet:
        return
    if not adapter.state:
        raise EngineError(f"IP-Adapter {adapter.name!r} was taken out of the UNet: load it again")
    state = {part: dict(values) for part, values in adapter.state.items()}
    try:
        pipe.load_ip_adapter(state, subfolder="", weight_name="", image_encoder_folder=None)
    except (KeyError, RuntimeError, ValueError) as err:
        raise EngineError(f"IP-Adapter {adapter.name!r} does not fit this model: {err}") from None
    adapter.in_unet = True
    adapter.state = {}


def take_out_of_unet(pipe: Any, adapter: LoadedAdapter) -> None:
    """Restore the UNet's own attention (to load another adapter into it)."""
    if adapter.in_unet:
        pipe.unload_ip_adapter()
        adapter.in_unet = False


@torch.no_grad()
def style_arguments(
    pipe: Any, adapter: LoadedAdapter, items: Sequence[GenerationInput], guided: bool
) -> dict[str, Any]:
    """`ip_adapter_image_embeds` for one call, with the adapter scale set from --sw.

    diffusers repeats one embedding for every image of a call, so a call's items share their
    references (see `style_key`); they are read by the image encoder and blended by weight.
    A call without references on a model whose UNet holds the adapter runs at scale 0, which
    diffusers skips: its pixels equal those of the model without the adapter.
    """
    first = items[0]
    if any(style_key(item) != style_key(first) for item in items):
        raise EngineError("one IP-Adapter call takes items with the same style references")
    styled = bool(first.style_refs) and first.style_weight > 0
    pipe.set_ip_adapter_scale(SCALE_PER_WEIGHT * first.style_weight if styled else 0.0)
    blank = _unconditional(adapter)  # (1, 1, D), or (1, 1, L, D) for IP-Adapter Plus
    positive = _blend(adapter, first) if styled else blank
    both = torch.cat([blank, positive]) if guided else positive  # negative first, as diffusers
    dtype = next(pipe.unet.parameters()).dtype
    return {"ip_adapter_image_embeds": [both.to(pipe._execution_device, dtype)]}


def style_key(item: GenerationInput) -> tuple[object, ...]:
    """Items with equal keys can share one IP-Adapter call: same references, same --sw."""
    if not item.style_refs or item.style_weight <= 0:
        return ()
    refs = tuple((ref.digest or id(ref.image), ref.weight) for ref in item.style_refs)
    return (refs, item.style_weight)


def _blend(adapter: LoadedAdapter, item: GenerationInput) -> torch.Tensor:
    """The weighted mean of the item's references' embeddings, shaped like `_unconditional`."""
    total = sum(ref.weight for ref in item.style_refs)
    parts = [_embed(adapter, ref.image) * (ref.weight / total) for ref in item.style_refs]
    return torch.stack(parts).sum(0)[None, None]


def _embed(adapter: LoadedAdapter, image: np.ndarray | None) -> torch.Tensor:
    """One image's embedding, (D,) or (L, D); None: the all-zero pixel tensor that diffusers
    encodes as the unconditional input of IP-Adapter Plus."""
    encoder = adapter.encoder
    if image is None:
        side = int(encoder.config.image_size)
        pixels = torch.zeros(1, 3, side, side)
    else:
        pixels = adapter.processor(images=[image], return_tensors="pt").pixel_values
    pixels = pixels.to(encoder.device, encoder.dtype)  # (1, 3, S, S)
    if adapter.hidden_states:
        hidden = encoder(pixels, output_hidden_states=True).hidden_states[-2]
        return hidden[0].float().cpu()  # (L, D)
    return encoder(pixels).image_embeds[0].float().cpu()  # (D,)


def _unconditional(adapter: LoadedAdapter) -> torch.Tensor:
    """What guidance steers away from, as diffusers' encode_image makes it: zeros for the
    plain IP-Adapter, the encoding of an all-zero input for the others."""
    if not adapter.hidden_states:
        return torch.zeros(1, 1, int(adapter.encoder.config.projection_dim))
    return _embed(adapter, None)[None, None]
