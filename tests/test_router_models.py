"""Routing with registered models: --model by name or family, capability checks, and fallback
to the default model only when the call allows it, saying so in the route's reason."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from imagineer.engines.base import (
    Capability,
    EngineInfo,
    GenerationInput,
    GenerationOutput,
    RunControl,
)
from imagineer.engines.registry import EngineRegistry, EngineSpec
from imagineer.models import AddOptions, Catalog, entry_for
from imagineer.models.loading import ModelManager
from imagineer.models.specs import register_models
from imagineer.router import Router, RoutingError
from tiny_models import tiny_sd_dir

T2I, I2I, T2V = Capability.TEXT_TO_IMAGE, Capability.IMAGE_TO_IMAGE, Capability.TEXT_TO_VIDEO


class DefaultEngine:
    """Stands in for the embedded model: the router reads only its info."""

    info = EngineInfo("embedded", "embedded", frozenset({T2I, I2I}), "e", "0" * 64, 64, 8, 1, 1.0)

    def generate(
        self, batch: Sequence[GenerationInput], control: RunControl
    ) -> list[GenerationOutput]:
        raise NotImplementedError("routing tests never generate")


@pytest.fixture
def router(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Router:
    catalog = Catalog(tmp_path)
    folder = tiny_sd_dir(tmp_path_factory)
    catalog.add(entry_for(str(folder), AddOptions(name="tiny")))
    catalog.add(entry_for(str(folder), AddOptions(name="tiny-2")))
    registry = EngineRegistry()
    registry.register(EngineSpec("embedded", "embedded", frozenset({T2I, I2I}), load=DefaultEngine))
    register_models(registry, ModelManager(catalog, "cpu"))
    return Router(registry, default="embedded")


def test_a_named_model_is_used(router: Router) -> None:
    route = router.route(T2I, model="tiny")
    assert (route.name, route.reason, route.fell_back) == ("tiny", "--model tiny", False)
    assert route.engine.info.family == "sd15"


def test_a_family_name_picks_its_first_model(router: Router) -> None:
    route = router.route(T2I, model="sd15")
    assert route.name == "tiny" and "family sd15" in route.reason


def test_no_model_uses_the_default(router: Router) -> None:
    assert router.route(T2I).name == "embedded"


def test_a_missing_model_is_an_error_unless_fallback_is_allowed(router: Router) -> None:
    with pytest.raises(RoutingError, match="unknown model 'gone'"):
        router.route(T2I, model="gone")
    route = router.route(I2I, model="gone", allow_fallback=True)
    assert route.name == "embedded" and route.fell_back
    assert route.reason.startswith("fell back: unknown model 'gone'")


def test_a_capability_no_engine_has_is_refused_with_reasons(router: Router) -> None:
    with pytest.raises(RoutingError, match="tiny cannot do text-to-video"):
        router.route(T2V, model="tiny")
    with pytest.raises(RoutingError, match="no engine can do text-to-video"):
        router.route(T2V)
