"""Tiny random-weight diffusers pipelines built from configs, offline: the fixtures that tests,
benchmarks and docs run the real loading and engine code on, in seconds, without downloads.

The tokenizer is CLIP's real BPE, written from the vocabulary file that open_clip_torch's wheel
ships (MIT; install it with `pip install --no-deps open_clip_torch`, as `make install` does), so
token ids match real CLIP. The networks are a few channels wide and their weights are random:
the images are noise-like, but every code path a real checkpoint takes runs.
"""

from __future__ import annotations

import gzip
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

BPE_FILE = "open_clip/bpe_simple_vocab_16e6.txt.gz"
CLIP_MERGES = 49152 - 256 - 2  # CLIP uses the first 48,894 merges of the file
TEXT_DIM = 32  # hidden size of the tiny text encoder (= UNet cross-attention width)
BASE_SIDE = 64  # sample_size 32 latents x the tiny VAE's factor 2
IMAGE_EMBED_DIM = 16  # the tiny IP-Adapter image encoder's projection width


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def clip_bpe_path() -> Path:
    """The BPE vocabulary file inside open_clip_torch's installed files (not imported)."""
    try:
        dist = metadata.distribution("open_clip_torch")
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            "the tiny test pipelines need CLIP's BPE vocabulary from open_clip_torch: "
            "run `pip install --no-deps open_clip_torch` (make install does)"
        ) from None
    path = Path(str(dist.locate_file(BPE_FILE)))
    if not path.is_file():
        raise RuntimeError(f"open_clip_torch is installed but {BPE_FILE} is missing from it")
    return path


def write_clip_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """vocab.json and merges.txt of CLIP's tokenizer (49,408 tokens), from the BPE file."""
    with gzip.open(clip_bpe_path()) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : CLIP_MERGES + 1]]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab_path.write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    merges_path.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return vocab_path, merges_path


def clip_tokenizer(work: Path) -> Any:
    from transformers import CLIPTokenizer

    vocab, merges = write_clip_tokenizer_files(work / "clip-bpe")
    # model_max_length must be given: without it, padding overflows (see FACTS).
    return CLIPTokenizer(str(vocab), str(merges), model_max_length=77)


def _text_encoder(vocab_size: int) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=2,
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        pad_token_id=1,
        vocab_size=vocab_size,
    )
    return CLIPTextModel(config)


def _unet() -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=BASE_SIDE // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=(2, 4),
        norm_num_groups=32,
    )


def _vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=32,
        sample_size=BASE_SIDE,
    )


def _scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def tiny_sd_pipeline(work: Path, seed: int = 0) -> Any:
    """A Stable Diffusion pipeline a few channels wide, random weights fixed by `seed`."""
    from diffusers import StableDiffusionPipeline

    tokenizer = clip_tokenizer(work)
    torch.manual_seed(seed)
    pipe = StableDiffusionPipeline(
        unet=_unet(),
        vae=_vae(),
        text_encoder=_text_encoder(len(tokenizer)),
        tokenizer=tokenizer,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]
    return pipe


def save_tiny_sd(folder: Path, seed: int = 0, *, licence: str | None = "MIT") -> Path:
    """Write a tiny SD pipeline as a diffusers folder (about 16 MB), with a model card."""
    pipe = tiny_sd_pipeline(folder.parent / f".{folder.name}-work", seed)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    if licence is not None:
        _model_card(folder, licence)
    return folder


def save_tiny_animatediff(folder: Path, seed: int = 0) -> Path:
    """Write a tiny AnimateDiff pipeline (tiny SD + a tiny motion adapter) as a folder."""
    from diffusers import AnimateDiffPipeline, MotionAdapter

    sd = tiny_sd_pipeline(folder.parent / f".{folder.name}-work", seed)
    torch.manual_seed(seed + 1)
    adapter = MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=1,
        motion_norm_num_groups=8,
        motion_num_attention_heads=2,
        motion_max_seq_length=32,
    )
    pipe = AnimateDiffPipeline(
        vae=sd.vae,
        text_encoder=sd.text_encoder,
        tokenizer=sd.tokenizer,
        unet=sd.unet,
        motion_adapter=adapter,
        scheduler=sd.scheduler,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)  # type: ignore[attr-defined]
    _model_card(folder, "MIT")
    return folder


def save_tiny_lora(path: Path, folder: Path, seed: int = 0, rank: int = 4) -> Path:
    """A random LoRA for the tiny SD UNet in `folder`, saved as diffusers writes LoRAs."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig, get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), local_files_only=True)
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: make the LoRA change something
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    StableDiffusionPipeline.save_lora_weights(
        str(path.parent),
        unet_lora_layers=get_peft_model_state_dict(unet),
        weight_name=path.name,
        safe_serialization=True,
    )
    return path


def _model_card(folder: Path, licence: str) -> None:
    (folder / "README.md").write_text(
        f"---\nlicense: {licence.lower()}\nlibrary_name: diffusers\n---\n"
        "# tiny random-weight pipeline\n\nBuilt by imagineer for tests; draws noise.\n"
    )
    (folder / "LICENSE").write_text(f"{licence} licence text of the tiny test pipeline\n")


def save_tiny_ip_adapter(folder: Path, sd_folder: Path, seed: int = 0) -> Path:
    """A random IP-Adapter for the tiny SD UNet in `sd_folder` and a tiny CLIP image encoder,
    laid out as the IP-Adapter releases are: ip-adapter.safetensors beside image_encoder/."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    unet = UNet2DConditionModel.from_pretrained(str(sd_folder / "unet"), local_files_only=True)
    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            projection_dim=IMAGE_EMBED_DIM,
        )
    )
    encoder.save_pretrained(str(folder / "image_encoder"))
    cross = unet.config.cross_attention_dim
    gen = torch.Generator().manual_seed(seed)
    state = {
        "image_proj.proj.weight": torch.randn(cross * 4, IMAGE_EMBED_DIM, generator=gen) * 0.2,
        "image_proj.proj.bias": torch.zeros(cross * 4),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    # diffusers numbers the UNet's attention processors from 1 and gives the image weights of
    # each cross-attention one the odd ids 1, 3, 5, ... in processor order.
    cross_attentions = [n for n in unet.attn_processors if n.endswith("attn2.processor")]
    for i, name in enumerate(cross_attentions):
        width = _block_width(unet.config, name)
        for part in ("to_k_ip", "to_v_ip"):
            weight = torch.randn(width, cross, generator=gen) * 0.3
            state[f"ip_adapter.{2 * i + 1}.{part}.weight"] = weight
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ip-adapter.safetensors"
    save_file(state, str(path))
    return path


def _block_width(config: Any, name: str) -> int:
    """The channel width of the UNet block an attention processor sits in."""
    widths = list(config.block_out_channels)
    if name.startswith("mid_block"):
        return int(widths[-1])
    block = int(name.split(".")[1])
    return int(widths[block] if name.startswith("down_blocks") else widths[::-1][block])
