"""create_app: the FastAPI app over one Runtime, with its routers, worker thread and keys."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from imagineer.config import Settings
from imagineer.runtime import Runtime
from imagineer.server.deps import ServerState
from imagineer.server.errors import install_handlers
from imagineer.server.keys import KeyStore
from imagineer.server.limits import RateLimiter
from imagineer.server.media import UrlSigner
from imagineer.server.options import ServerOptions
from imagineer.server.routes import (
    events,
    health,
    images,
    jobs,
    media,
    prompts,
    uploads,
    verify,
    videos,
    webhooks,
)
from imagineer.server.routes.webhooks import Webhooks
from imagineer.server.signals import JobSignals
from imagineer.server.webhooks import DispatcherThread, WebhookDispatcher, master_secret
from imagineer.server.worker import InProcessWorker
from imagineer.service import Service
from imagineer.web import mount_studio

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    options: ServerOptions | None = None,
    service: Service | None = None,
) -> FastAPI:
    """The HTTP API. A runtime (or service) passed in is the caller's to close; one made here
    is closed when the app shuts down. The worker thread starts with the app, not here."""
    options = options or ServerOptions()
    own_runtime = runtime is None and service is None
    if service is None:
        service = Service(runtime or Runtime.from_settings(settings))
    runtime = service.runtime
    media_dir = options.media_dir or settings.data_dir / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    runtime.store  # noqa: B018 - the jobs table must exist before the keys' quota count reads it
    worker = None
    if options.worker:
        worker = InProcessWorker(
            service,
            poll_interval_s=options.poll_interval_s,
            heartbeat_s=options.heartbeat_s,
            max_batch=options.batch_jobs,
            batch_window_s=options.batch_window_s,
        )
    hooks = _webhooks(settings, runtime, options)
    state = ServerState(
        settings=settings,
        options=options,
        runtime=runtime,
        service=service,
        keys=KeyStore(settings.jobs_url),
        limiter=RateLimiter(options.rate_per_s, options.rate_burst),
        signer=UrlSigner.create(),
        media_dir=media_dir,
        worker=worker,
        signals=JobSignals(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop_watching = runtime.store.watch(state.signals.changed)
        if state.worker is not None:
            state.worker.start()
        if hooks.dispatcher is not None:
            hooks.dispatcher.start()
        try:
            yield
        finally:
            if hooks.dispatcher is not None:
                await run_in_threadpool(hooks.dispatcher.stop)
            await run_in_threadpool(_shut_down, state, own_runtime)
            stop_watching()

    app = FastAPI(
        title="imagineer",
        summary="Images from Midjourney-style prompts, every output labelled as AI-made.",
        version="1",
        lifespan=lifespan,
    )
    app.state.server = state
    app.state.webhooks = hooks
    install_handlers(app)
    for module in (health, jobs, events, media, verify, images, prompts, webhooks, videos, uploads):
        app.include_router(module.router)
    mount_studio(app)  # the web studio at /, its files under /static/
    return app


def _webhooks(settings: Settings, runtime: Runtime, options: ServerOptions) -> Webhooks:
    """The master secret, and a dispatcher thread when this process delivers events."""
    master = master_secret(settings)
    if not options.webhooks:
        return Webhooks(master, None)
    dispatcher = WebhookDispatcher(
        runtime.store, master, allow_private=settings.webhook_allow_private
    )
    return Webhooks(master, DispatcherThread(dispatcher))


def _shut_down(state: ServerState, own_runtime: bool) -> None:
    """Stop taking jobs, let the running one finish (or requeue it), close what we opened."""
    if state.worker is not None:
        requeued = state.worker.stop(state.options.shutdown_grace_s)
        if requeued:
            logger.warning("requeued at shutdown: %s", ", ".join(requeued))
    state.keys.close()
    if own_runtime:
        state.runtime.close()
