"""The one service layer that the CLI, the HTTP server and the Python API all call."""

from imagineer.service.core import Service
from imagineer.service.jobs import (
    ImagineJob,
    JobRequest,
    RemixJob,
    UpscaleJob,
    VaryJob,
    from_payload,
    to_payload,
)
from imagineer.service.plan import (
    PlannedGrid,
    UnsupportedRequest,
    guidance_for,
    input_from_recipe,
    plan,
    plan_grids,
    random_seed,
    steps_for,
)
from imagineer.service.results import (
    GenerationResult,
    ModelSummary,
    NotAnOutput,
    OutputImage,
    SafetyRefusal,
    Timings,
)

__all__ = [
    "GenerationResult",
    "ImagineJob",
    "JobRequest",
    "ModelSummary",
    "NotAnOutput",
    "OutputImage",
    "PlannedGrid",
    "RemixJob",
    "SafetyRefusal",
    "Service",
    "Timings",
    "UnsupportedRequest",
    "UpscaleJob",
    "VaryJob",
    "from_payload",
    "guidance_for",
    "input_from_recipe",
    "plan",
    "plan_grids",
    "random_seed",
    "steps_for",
    "to_payload",
]
