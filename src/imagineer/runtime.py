"""The runtime of one process: engines, router, job store, safety gate and signing, from Settings.

Nothing is built at import or construction: each part is created on first use and kept, so a
CLI call that only lists jobs never loads a model, and one that generates never signs when
signing is off.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING

from imagineer.config import Settings
from imagineer.engines.base import Capability, Engine, EngineError
from imagineer.engines.registry import EngineRegistry, EngineSpec
from imagineer.router import Router

if TYPE_CHECKING:
    from imagineer.jobs import JobStore
    from imagineer.models.loading import ModelManager
    from imagineer.provenance.keys import SigningIdentity
    from imagineer.provenance.watermark import Watermarker
    from imagineer.safety import OutputChecker, SafetyGate

EMBEDDED = "embedded"
EMBEDDED_VIDEO = "embedded-video"


def resolve_device(device: str) -> str:
    """ "auto" becomes "cuda" when a CUDA device is present, else "cpu"; others pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def embedded_spec(device: str) -> EngineSpec:
    """The embedded engine as the registry knows it: loaded from the shipped weights."""
    from imagineer.engines.embedded.engine import EmbeddedEngine, weights_available

    return EngineSpec(
        name=EMBEDDED,
        family="embedded",
        capabilities=frozenset(
            {Capability.TEXT_TO_IMAGE, Capability.IMAGE_TO_IMAGE, Capability.UPSCALE}
        ),
        load=lambda: EmbeddedEngine.load(device=resolve_device(device)),
        available=weights_available,
        description="imagineer's own small model, trained on its procedural world",
    )


def embedded_video_spec(registry: EngineRegistry) -> EngineSpec:
    """Text-to-video and image-to-video over whatever engine is registered as "embedded": the
    trained video model when its weights sit beside the image weights the engine was loaded
    from, else zero-shot animation from the image model alone."""

    def load() -> Engine:
        from imagineer.engines.embedded.engine import EmbeddedEngine
        from imagineer.video.learned import LearnedVideoEngine, video_weights_available
        from imagineer.video.zeroshot import ZeroShotVideoEngine

        image = registry.get(EMBEDDED)
        if not isinstance(image, EmbeddedEngine):
            raise EngineError(f"{EMBEDDED_VIDEO} animates the embedded image model only")
        if image.folder is not None and video_weights_available(image.folder) is None:
            return LearnedVideoEngine.load(image, image.folder)
        return ZeroShotVideoEngine(image)

    return EngineSpec(
        name=EMBEDDED_VIDEO,
        family="embedded",
        capabilities=frozenset({Capability.TEXT_TO_VIDEO, Capability.IMAGE_TO_VIDEO}),
        load=load,
        available=lambda: registry.spec(EMBEDDED).available(),
        description="imagineer's video model (zero-shot from the image model without its weights)",
    )


def loaded_spec(engine: Engine, *, name: str | None = None, description: str = "") -> EngineSpec:
    """A spec for an engine that is already built (tests, the Python API)."""
    info = engine.info
    return EngineSpec(
        name=name or info.name,
        family=info.family,
        capabilities=info.capabilities,
        load=lambda: engine,
        description=description or info.model_id,
    )


class _StoreRefusalLog:
    """The job store as the safety limiter's refusal log (it takes keyword arguments)."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def record_refusal(
        self, user_id: str, category: str, normalized_prompt: str, message: str
    ) -> None:
        self._store.record_refusal(
            user_id=user_id, category=category, normalized_prompt=normalized_prompt, message=message
        )

    def count_refusals(self, user_id: str, since: datetime) -> int:
        return self._store.count_refusals(user_id, since)


class Runtime:
    """Everything the service layer needs, built from one Settings on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._registry: EngineRegistry | None = None
        self._models: ModelManager | None = None
        self._store: JobStore | None = None
        self._gate: SafetyGate | None = None
        self._identity: SigningIdentity | None = None
        self._marker: Watermarker | None = None
        self._checker: OutputChecker | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        return cls(settings)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the job store's connections (engines stay loaded until the process ends)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._gate = None

    @property
    def registry(self) -> EngineRegistry:
        """Installed engines; the embedded engine is registered as "embedded"."""
        with self._lock:
            if self._registry is None:
                if self.settings.threads is not None:
                    import torch

                    torch.set_num_threads(self.settings.threads)
                registry = EngineRegistry()
                registry.register(embedded_spec(self.settings.device))
                from imagineer.models.specs import register_models

                register_models(registry, self.models)
                # after the catalog: a trained video model, when installed, is routed to first
                registry.register(embedded_video_spec(registry))
                self._registry = registry
            return self._registry

    @property
    def models(self) -> ModelManager:
        """The user's registered checkpoints (models.json in the data dir) and the memory-counted
        cache their pipelines load into."""
        with self._lock:
            if self._models is None:
                from imagineer.models.catalog import Catalog
                from imagineer.models.loading import ModelManager

                catalog = Catalog(self.settings.data_dir)
                self._models = ModelManager(catalog, resolve_device(self.settings.device))
            return self._models

    def reload_models(self) -> None:
        """Register the catalog's models again (after `models add` or `models remove`)."""
        with self._lock:
            if self._registry is not None:
                from imagineer.models.specs import register_models

                for spec in self._registry.specs():
                    if spec.name != EMBEDDED:
                        self._registry.remove(spec.name)
                register_models(self._registry, self.models)
                self._registry.register(embedded_video_spec(self._registry))

    def add_engine(self, engine: Engine, *, name: str | None = None) -> None:
        """Register an engine already built, replacing any of the same name."""
        self.registry.register(loaded_spec(engine, name=name), replace=True)

    @property
    def router(self) -> Router:
        return Router(self.registry, default=self.settings.default_model)

    @property
    def store(self) -> JobStore:
        """The job store (an SQLite file in the data dir unless a database URL is set)."""
        with self._lock:
            if self._store is None:
                from imagineer.jobs import JobStore

                if self.settings.database_url is None:
                    self.settings.data_dir.mkdir(parents=True, exist_ok=True)
                self._store = JobStore(self.settings.jobs_url)
            return self._store

    @property
    def gate(self) -> SafetyGate:
        """The safety policy, with refusals kept in the job store and repeat offenders slowed."""
        with self._lock:
            if self._gate is None:
                from imagineer.safety import Policy, RefusalLimiter, SafetyGate

                limiter = RefusalLimiter(_StoreRefusalLog(self.store))
                self._gate = SafetyGate(Policy.load(self.settings.policy_file), limiter)
            return self._gate

    @property
    def identity(self) -> SigningIdentity:
        """The C2PA signing identity: the operator's, or one generated in the data dir."""
        with self._lock:
            if self._identity is None:
                from imagineer.provenance.keys import ensure_signing_identity

                self._identity = ensure_signing_identity(
                    self.settings.data_dir,
                    cert_chain_path=self.settings.signing_cert,
                    key_path=self.settings.signing_key,
                )
            return self._identity

    @property
    def watermarker(self) -> Watermarker:
        with self._lock:
            if self._marker is None:
                from imagineer.provenance.watermark import Watermarker

                self._marker = Watermarker.create()
            return self._marker

    @property
    def output_checker(self) -> OutputChecker | None:
        """The image check after generation, when Settings.output_check turns it on."""
        with self._lock:
            if self._checker is None and self.settings.output_check:
                from imagineer.safety import NudeNetChecker

                self._checker = NudeNetChecker()
            return self._checker

    def set_output_checker(self, checker: OutputChecker | None) -> None:
        """Use another image check (a deployment's own, or a test's)."""
        with self._lock:
            self._checker = checker
