"""The FastAPI application."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from app.channels.inbox import MessageIdTaken
from app.channels.webhooks import (
    log_configured_channels,
    message_id_taken,
    sms_queue_sender,
    spool_drainer,
)
from app.channels.webhooks import router as channel_router
from app.clock import Clock, clock_for
from app.config import Settings, get_settings
from app.dataio.views import router as dataio_router
from app.db import make_engine
from app.reports.views import router as reports_router
from app.web.access import OwnerRefused, describe_mode
from app.web.links import router as links_router
from app.web.views import owner_refused
from app.web.views import router as web_router

STATIC_DIR = Path(__file__).parent / "web" / "static"
log = logging.getLogger("app")


_FROZEN = threading.Event()


def _freeze_startup_objects() -> None:
    """Keep what start-up loaded out of the cyclic GC's full passes (once per process).

    Modules, mappers, templates and word tables live as long as the process; full
    collections walking them all stopped every request at once (p99 of the webhook
    benchmark 380-490 ms without, 290-400 ms with; docs/channels.md).
    """
    if not _FROZEN.is_set():
        _FROZEN.set()
        gc.freeze()


def create_app(
    *, settings: Settings | None = None, engine: Engine | None = None, clock: Clock | None = None
) -> FastAPI:
    """Build the app; tests pass their own engine and clock, `huitou serve` passes none."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The morning digests run inside the server; run records keep them exactly once
        # however many server processes there are.
        scheduler = None
        if settings.scheduler_enabled:
            from app.digest.scheduled import DigestScheduler

            scheduler = DigestScheduler(
                engine=app.state.engine, settings=settings, clock=app.state.clock
            )
            scheduler.start()
        app.state.scheduler = scheduler
        # Callbacks kept while the database was locked or down are replayed from the
        # spool now (start-up) and whenever they appear.
        drainer = spool_drainer(app.state)
        if drainer is not None:
            drainer.start()
        app.state.spool_drainer = drainer
        # Owner-confirmed texts (发短信) are sent here, outside the bot's transaction.
        sms_sender = sms_queue_sender(app.state)
        if sms_sender is not None:
            sms_sender.start()
        app.state.sms_sender = sms_sender
        _freeze_startup_objects()
        try:
            yield
        finally:
            if sms_sender is not None:
                sms_sender.stop()
            if drainer is not None:
                drainer.stop()
            if scheduler is not None:
                scheduler.shutdown()

    otel = settings.otel_enabled
    app = FastAPI(
        title="Huitou 回头客",
        version="0.1.0",
        lifespan=lifespan,
        telemetry={"tracing": otel, "metrics": otel, "logs": otel, "operation_spans": otel},
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.effective_database_url)
    app.state.clock = clock or clock_for(settings.today, settings.timezone)
    # The provider callbacks first: they are the busiest routes and share no path.
    app.include_router(channel_router)
    app.include_router(web_router)
    app.include_router(dataio_router)
    app.include_router(links_router)
    app.include_router(reports_router)
    app.add_exception_handler(OwnerRefused, owner_refused)
    app.add_exception_handler(MessageIdTaken, message_id_taken)
    log_configured_channels(settings)
    log.info(describe_mode(settings))
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR), check_dir=False), name="static")
    return app
