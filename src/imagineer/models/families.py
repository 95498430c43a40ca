"""Model families: what each diffusers pipeline class is, can do, and runs at by default."""

from __future__ import annotations

from dataclasses import dataclass, replace

from imagineer.engines.base import Capability

T2I = Capability.TEXT_TO_IMAGE
I2I = Capability.IMAGE_TO_IMAGE
INPAINT = Capability.INPAINT
UPSCALE = Capability.UPSCALE
T2V = Capability.TEXT_TO_VIDEO
I2V = Capability.IMAGE_TO_VIDEO


@dataclass(frozen=True)
class Family:
    """Defaults and abilities shared by every checkpoint of one model family."""

    name: str  # what `imagineer models list` shows and --family accepts
    kind: str  # "image" or "video": which engine runs it
    pipelines: tuple[str, ...]  # diffusers pipeline class names that belong to this family
    capabilities: frozenset[Capability]
    base_side: int  # the side of the square it was trained at, in pixels
    size_multiple: int  # width and height must be multiples of this
    default_steps: int
    default_guidance: float
    weighted_prompts: bool = False  # `::` weights as prompt-embedding blends (CLIP text models)
    negative_prompt: bool = True  # the pipeline takes a negative prompt
    cuda_dtype: str = "float16"  # "float16" or "bfloat16" on CUDA (CPU always float32)
    frames: int = 1  # video: default number of frames
    fps: int = 8  # video: the rate it was trained for
    frames_rule: tuple[int, int] = (1, 0)  # video: frames must be k*a + b
    max_batch: int = 4
    description: str = ""


_SD15 = Family(
    "sd15",
    "image",
    ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"),
    frozenset({T2I, I2I, INPAINT, UPSCALE}),
    512,
    8,
    30,
    7.5,
    weighted_prompts=True,
    description="Stable Diffusion 1.x / 2.x",
)
_WAN = Family(
    "wan",
    "video",
    ("WanPipeline",),
    frozenset({T2V}),
    480,
    16,
    30,
    5.0,
    cuda_dtype="bfloat16",
    frames=33,
    fps=16,
    frames_rule=(4, 1),
    max_batch=1,
    description="Wan 2.x text-to-video",
)
_COGVIDEOX = Family(
    "cogvideox",
    "video",
    ("CogVideoXPipeline",),
    frozenset({T2V}),
    480,
    16,
    50,
    6.0,
    cuda_dtype="bfloat16",
    frames=49,
    fps=8,
    frames_rule=(8, 1),
    max_batch=1,
    description="CogVideoX text-to-video",
)

# Sibling checkpoints (inpainting, image-to-video) run at their base family's defaults.
FAMILIES: tuple[Family, ...] = (
    _SD15,
    replace(
        _SD15,
        name="sd15-inpaint",
        pipelines=("StableDiffusionInpaintPipeline",),
        capabilities=frozenset({INPAINT}),
        description="Stable Diffusion inpainting checkpoint (9 input channels)",
    ),
    Family(
        "sdxl",
        "image",
        ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"),
        frozenset({T2I, I2I, INPAINT, UPSCALE}),
        1024,
        8,
        30,
        6.0,
        weighted_prompts=True,
        description="Stable Diffusion XL",
    ),
    Family(
        "sd3",
        "image",
        ("StableDiffusion3Pipeline",),
        frozenset({T2I, I2I, INPAINT, UPSCALE}),
        1024,
        16,
        28,
        7.0,
        description="Stable Diffusion 3 / 3.5",
    ),
    Family(
        "flux",
        "image",
        ("FluxPipeline",),
        frozenset({T2I, I2I, INPAINT, UPSCALE}),
        1024,
        16,
        28,
        3.5,
        negative_prompt=False,
        cuda_dtype="bfloat16",
        max_batch=2,
        description="FLUX.1 (dev, schnell)",
    ),
    Family(
        "pixart",
        "image",
        ("PixArtAlphaPipeline", "PixArtSigmaPipeline"),
        frozenset({T2I}),
        1024,
        16,
        20,
        4.5,
        description="PixArt-α / PixArt-Σ",
    ),
    Family(
        "sana",
        "image",
        ("SanaPipeline",),
        frozenset({T2I}),
        1024,
        32,
        20,
        4.5,
        cuda_dtype="bfloat16",
        description="Sana",
    ),
    Family(
        "sd-x4-upscaler",
        "image",
        ("StableDiffusionUpscalePipeline",),
        frozenset({UPSCALE}),
        512,
        8,
        20,
        9.0,
        max_batch=1,
        description="Stable Diffusion x4 upscaler (text-guided)",
    ),
    Family(
        "animatediff",
        "video",
        ("AnimateDiffPipeline",),
        frozenset({T2V}),
        512,
        8,
        25,
        7.5,
        weighted_prompts=True,
        frames=16,
        fps=8,
        max_batch=1,
        description="AnimateDiff (Stable Diffusion 1.5 with a motion adapter)",
    ),
    Family(
        "ltx",
        "video",
        ("LTXPipeline", "LTXImageToVideoPipeline"),
        frozenset({T2V, I2V}),
        512,
        32,
        40,
        3.0,
        cuda_dtype="bfloat16",
        frames=49,
        fps=24,
        frames_rule=(8, 1),
        max_batch=1,
        description="LTX-Video",
    ),
    _WAN,
    replace(
        _WAN,
        name="wan-i2v",
        pipelines=("WanImageToVideoPipeline",),
        capabilities=frozenset({I2V}),
        description="Wan 2.x image-to-video",
    ),
    _COGVIDEOX,
    replace(
        _COGVIDEOX,
        name="cogvideox-i2v",
        pipelines=("CogVideoXImageToVideoPipeline",),
        capabilities=frozenset({I2V}),
        description="CogVideoX image-to-video",
    ),
    Family(
        "svd",
        "video",
        ("StableVideoDiffusionPipeline",),
        frozenset({I2V}),
        576,
        64,
        25,
        3.0,
        negative_prompt=False,
        frames=14,
        fps=7,
        max_batch=1,
        description="Stable Video Diffusion (image-to-video)",
    ),
)

FAMILY_NAMES = tuple(f.name for f in FAMILIES)


def family(name: str) -> Family:
    """The family called `name`; ValueError naming the known ones otherwise."""
    for fam in FAMILIES:
        if fam.name == name:
            return fam
    raise ValueError(f"unknown model family {name!r}: use one of {', '.join(FAMILY_NAMES)}")


def family_of_pipeline(class_name: str) -> Family:
    """The family of a diffusers pipeline class (model_index.json's `_class_name`)."""
    for fam in FAMILIES:
        if class_name in fam.pipelines:
            return fam
    known = ", ".join(p for f in FAMILIES for p in f.pipelines)
    raise ValueError(
        f"imagineer does not know the diffusers pipeline {class_name!r}; known pipelines: {known}"
    )


# Single-file checkpoints: diffusers' guess of the model type -> (family, pipeline class).
SINGLE_FILE_TYPES: dict[str, tuple[str, str]] = {
    "v1": ("sd15", "StableDiffusionPipeline"),
    "v2": ("sd15", "StableDiffusionPipeline"),
    "inpainting": ("sd15-inpaint", "StableDiffusionInpaintPipeline"),
    "inpainting_v2": ("sd15-inpaint", "StableDiffusionInpaintPipeline"),
    "xl_base": ("sdxl", "StableDiffusionXLPipeline"),
    "xl_refiner": ("sdxl", "StableDiffusionXLImg2ImgPipeline"),
    "playground-v2-5": ("sdxl", "StableDiffusionXLPipeline"),
    "upscale": ("sd-x4-upscaler", "StableDiffusionUpscalePipeline"),
    "sd3": ("sd3", "StableDiffusion3Pipeline"),
    "sd35_large": ("sd3", "StableDiffusion3Pipeline"),
    "sd35_medium": ("sd3", "StableDiffusion3Pipeline"),
    "flux-dev": ("flux", "FluxPipeline"),
    "flux-schnell": ("flux", "FluxPipeline"),
    "ltx-video": ("ltx", "LTXPipeline"),
    "ltx-video-0.9.1": ("ltx", "LTXPipeline"),
    "ltx-video-0.9.5": ("ltx", "LTXPipeline"),
    "ltx-video-0.9.7": ("ltx", "LTXPipeline"),
    "sana": ("sana", "SanaPipeline"),
    "wan-t2v-1.3B": ("wan", "WanPipeline"),
    "wan-t2v-14B": ("wan", "WanPipeline"),
    "wan-i2v-14B": ("wan-i2v", "WanImageToVideoPipeline"),
}
