"""Scenario fixtures: a shop's life on a fresh database (SQLite, or PostgreSQL in that pass)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from app.clock import FixedClock
from app.config import Settings
from tests.factories import make_shop
from tests.scenarios.harness import ShopLife


@pytest.fixture
def new_shop(engine: Engine, settings: Settings, clock: FixedClock) -> Callable[..., ShopLife]:
    """new_shop(slug, industry=...) -> a new, empty shop's life (clock at 2026-06-17 10:00)."""

    def make(slug: str = "life", industry: str = "water", name: str = "老街水站") -> ShopLife:
        make_shop(engine, clock, slug=slug, industry=industry, name=name)
        return ShopLife(engine=engine, settings=settings, clock=clock, slug=slug)

    return make
