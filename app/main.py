"""The FastAPI application."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from app.clock import Clock, clock_for
from app.config import Settings, get_settings
from app.db import make_engine
from app.web.views import router as web_router

STATIC_DIR = Path(__file__).parent / "web" / "static"


def create_app(
    *, settings: Settings | None = None, engine: Engine | None = None, clock: Clock | None = None
) -> FastAPI:
    """Build the app; tests pass their own engine and clock, `huitou serve` passes none."""
    settings = settings or get_settings()
    app = FastAPI(title="Huitou 回头客", version="0.1.0")
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.effective_database_url)
    app.state.clock = clock or clock_for(settings.today, settings.timezone)
    app.include_router(web_router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR), check_dir=False), name="static")
    return app
