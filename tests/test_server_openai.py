"""The real `openai` client against `imagineer serve`'s app under uvicorn on a local port."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn
from PIL import Image

from imagineer.media.images import read_recipe
from imagineer.prompts import size_for_aspect
from imagineer.runtime import Runtime
from imagineer.server.app import create_app
from imagineer.server.options import ServerOptions
from test_service import DENY_POLICY, make_runtime, quiet_settings


@dataclass(frozen=True)
class Served:
    base_url: str
    key: str
    runtime: Runtime


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The app on 127.0.0.1 and a free port, with one API key; stopped after the test."""
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_POLICY)
    settings = quiet_settings(tmp_path, policy_file=policy)
    options = ServerOptions(poll_interval_s=0.05, heartbeat_s=0.1, shutdown_grace_s=5)
    with make_runtime(settings) as runtime:
        app = create_app(settings, runtime=runtime, options=options)
        key = app.state.server.keys.create("alice").secret
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # bound before the thread starts: no race for the port
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        try:
            yield Served(f"http://127.0.0.1:{port}/v1", key, runtime)
        finally:
            server.should_exit = True
            thread.join(20)
            sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # create_variation
def test_openai_client_generates_pngs_that_carry_the_recipe(served: Served, tmp_path: Path) -> None:
    client = openai.OpenAI(base_url=served.base_url, api_key=served.key, max_retries=0)
    response = client.images.generate(
        prompt="a red ball on grass",
        n=2,
        size="512x256",
        response_format="b64_json",
        extra_body={"seed": 7, "steps": 2},
    )
    assert response.data is not None and len(response.data) == 2
    info = served.runtime.registry.get("embedded").info
    expected = size_for_aspect((2, 1), area=info.base_area, multiple=info.size_multiple)
    for index, item in enumerate(response.data):
        assert item.b64_json is not None
        data = base64.b64decode(item.b64_json)
        with Image.open(io.BytesIO(data)) as png:
            assert png.format == "PNG" and png.size == expected
        path = tmp_path / f"got{index}.png"
        path.write_bytes(data)
        recipe = read_recipe(path)
        assert recipe is not None
        assert (recipe.seed, recipe.steps, recipe.engine) == (7 + index, 2, "embedded")
        assert "--ar 2:1" in recipe.prompt and item.revised_prompt == recipe.prompt

    linked = client.images.create_variation(
        image=("mine.png", (tmp_path / "got0.png").read_bytes(), "image/png"),
        n=1,
        response_format="url",
        extra_body={"steps": 2},
    )
    assert linked.data is not None and len(linked.data) == 1 and linked.data[0].url
    fetched = httpx.get(linked.data[0].url, timeout=10)  # a signed link: no key needed
    assert fetched.status_code == 200
    with Image.open(io.BytesIO(fetched.content)) as png:
        assert png.size == expected

    edited = client.images.edit(
        image=("mine.png", (tmp_path / "got1.png").read_bytes(), "image/png"),
        prompt="a blue ball on grass",
        response_format="b64_json",
        extra_body={"steps": 2},
    )
    assert edited.data is not None and edited.data[0].b64_json
    (tmp_path / "edit.png").write_bytes(base64.b64decode(edited.data[0].b64_json))
    edit_recipe = read_recipe(tmp_path / "edit.png")
    assert edit_recipe is not None and edit_recipe.kind == "vary"
    assert edit_recipe.prompt.startswith("a blue ball on grass")

    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(prompt="a zorblax", extra_body={"steps": 2})
    assert refused.value.code == "content_policy_violation"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served.base_url, api_key="imk_wrong", max_retries=0).models.list()
