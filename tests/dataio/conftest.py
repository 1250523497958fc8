"""Fixtures for import/export: a plain water shop, file writers, a whole-database fingerprint."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, func, select
from sqlmodel import SQLModel

from app.clock import FixedClock
from app.config import Settings
from app.dataio.imports import ImportResult, import_file
from app.dataio.read import Source
from app.db import read_session, write_session
from app.shops.models import Shop
from tests.factories import make_shop

Rows = Sequence[Sequence[Any]]


@pytest.fixture
def shop(engine: Engine, clock: FixedClock) -> Shop:
    """An empty water station (18 元 a bucket)."""
    return make_shop(engine, clock, slug="water")


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    def write(rows: Rows, name: str = "orders.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        text = "\n".join(",".join("" if c is None else str(c) for c in row) for row in rows)
        path.write_bytes((text + "\n").encode(encoding))
        return path

    return write


@pytest.fixture
def write_xlsx(tmp_path: Path) -> Callable[..., Path]:
    def write(rows: Rows, name: str = "orders.xlsx", title: str = "订单") -> Path:
        workbook = Workbook()
        sheet = workbook.active
        assert sheet is not None
        sheet.title = title
        for row in rows:
            sheet.append(list(row))
        path = tmp_path / name
        workbook.save(path)
        return path

    return write


def fingerprint(engine: Engine) -> dict[str, int]:
    """Row count of every table: an import that changes nothing leaves this equal."""
    counts: dict[str, int] = {}
    with read_session(engine) as session:
        for table in SQLModel.metadata.sorted_tables:
            counts[table.name] = session.execute(
                select(func.count()).select_from(table)
            ).scalar_one()
    return counts


@pytest.fixture
def run_import(engine: Engine, clock: FixedClock) -> Callable[..., ImportResult]:
    def run(shop: Shop, path: Path, *, dry_run: bool = False) -> ImportResult:
        with write_session(engine) as session:
            return import_file(
                session=session, shop=shop, source=Source.of(path), clock=clock, dry_run=dry_run
            )

    return run


@pytest.fixture
def templates_dir(settings: Settings) -> Path:
    return settings.templates_dir
