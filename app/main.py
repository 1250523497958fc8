"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from app.channels.webhooks import log_configured_channels
from app.channels.webhooks import router as channel_router
from app.clock import Clock, clock_for
from app.config import Settings, get_settings
from app.dataio.views import router as dataio_router
from app.db import make_engine
from app.outreach.views import router as outreach_router
from app.web.views import router as web_router

STATIC_DIR = Path(__file__).parent / "web" / "static"


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
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown()

    app = FastAPI(title="Huitou 回头客", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.effective_database_url)
    app.state.clock = clock or clock_for(settings.today, settings.timezone)
    app.include_router(web_router)
    app.include_router(dataio_router)
    app.include_router(channel_router)
    app.include_router(outreach_router)
    log_configured_channels(settings)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR), check_dir=False), name="static")
    return app
