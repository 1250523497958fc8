"""Smoke test of the scale benchmark (benchmarks/scale_digest.py) at a tiny size.

The figures are not judged, only that the benchmark runs end to end on PostgreSQL (two real
`huitou serve` processes, the fake push API, the exactly-once checks), that the summaries it
COPYs are the ones `rescore_shop` computes, and that its own throwaway cluster with
--keep/--reuse works (the path the full run uses). Runs in the PostgreSQL pass of
scripts/test (HUITOU_TEST_DATABASE_URL), like the other `postgres` tests.
"""

from __future__ import annotations

import math
import re
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import select

from app.clock import FixedClock
from app.customers.models import Customer, CustomerSummary
from app.customers.risk import PRIORS_KEY, rescore_shop
from app.db import make_engine, read_session, write_session
from app.shops.models import Shop
from benchmarks import scale_digest
from benchmarks._pg import Cluster, PgUnavailable, find_bindir
from tests.conftest import PG_URL, missing_tool

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NEEDS_PG = (
    "NOT RUN: needs PostgreSQL; runs in scripts/test's PostgreSQL pass (HUITOU_TEST_DATABASE_URL)"
)


@pytest.fixture
def scratch_url() -> Iterator[str]:
    """An empty database on the test server (and its `_run` copy), dropped afterwards."""
    if not PG_URL:
        pytest.skip(NEEDS_PG)
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = f"huitou_scale_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            for db in (f"{name}_run", name):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _state(session: Any, shop_id: int) -> dict[int, dict[str, Any]]:
    rows = session.exec(
        select(CustomerSummary, Customer.value_class)
        .join(Customer, Customer.id == CustomerSummary.customer_id)
        .where(CustomerSummary.shop_id == shop_id)
    ).all()
    return {
        s.customer_id: {
            **{f: getattr(s, f) for f in scale_digest.SUMMARY_FIELDS},
            "value_class": value_class,
        }
        for s, value_class in rows
    }


def test_tiny_scale_run_sends_every_digest_once(
    scratch_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--database-url", scratch_url, "--shops", "6", "--customers", "600", "--keep"]
    code = scale_digest.main([*argv, "--orders-per-customer", "8", "--timeout", "240"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"generated 6 shops, \d+ staff, 600 customers, [\d,]+ orders", out), out
    assert re.search(r"share: process 1 \(pid \d+\): \d+ shops .*process 2 \(pid \d+\)", out)
    assert re.search(r"per-shop run time \(claim to sent\): p50 \d+ ms, p99 \d+ ms", out)
    assert re.search(r"peak RSS \d+ MB, \d+ MB", out)
    assert re.search(r"baseline: one SELECT of every shop's due customers", out)
    assert "exactly once: every (shop, staff, day) key pushed once" in out
    assert re.search(r"^PASS: 6 shops' digests \(600 customers\) .* exactly once: yes", out, re.M)

    # The kept run database: one sent run per shop, every delivery sent through the webhook.
    run = make_engine(scale_digest.Server(scratch_url).run_url)
    try:
        with run.connect() as conn:
            runs = conn.execute(text("SELECT shop_id, status FROM digest_run")).all()
            deliveries = conn.execute(text("SELECT status, channel FROM digest_delivery")).all()
    finally:
        run.dispose()
    assert sorted(r[0] for r in runs) == list(range(1, 7))
    assert {r[1] for r in runs} == {"sent"}
    assert deliveries and set(deliveries) == {("sent", "webhook")}

    # The generated summaries are exactly what the app's own rescoring computes.
    engine = make_engine(scratch_url)
    day = scale_digest.DEFAULT_DAY
    generated_at = datetime.combine(day, time(2), ZoneInfo(scale_digest.TZ)).astimezone(UTC)
    clock = FixedClock(generated_at)
    try:
        with read_session(engine) as session:
            shops = list(session.exec(select(Shop).order_by(Shop.id)))
            before = {s.id: _state(session, s.id or 0) for s in shops}
        for shop in shops:
            assert shop.id is not None
            stored = shop.settings[PRIORS_KEY]
            with write_session(engine) as session:
                own = session.get(Shop, shop.id)
                assert own is not None
                priors = rescore_shop(session=session, shop=own, clock=clock)
                after = _state(session, shop.id)
                session.rollback()
            assert _close({**priors.to_dict(), "fitted_on": day.isoformat()}, stored)
            assert after.keys() == before[shop.id].keys()
            for cid, values in after.items():
                assert _close(values, before[shop.id][cid]), (shop.id, cid)
    finally:
        engine.dispose()


def test_own_cluster_keep_and_reuse(capsys: pytest.CaptureFixture[str]) -> None:
    """The path the full run takes: a cluster of its own, kept, then reused."""
    if not PG_URL:
        pytest.skip(NEEDS_PG)
    try:
        find_bindir()
    except PgUnavailable as exc:
        missing_tool(str(exc))
    base = Path(tempfile.mkdtemp(prefix="huitou-scale-test-"))
    argv = ["--database-url", "", "--pg-dir", str(base), "--shops", "3", "--customers", "90"]
    try:
        assert scale_digest.main([*argv, "--keep", "--generate-only"]) == 0
        out = capsys.readouterr().out
        assert re.search(r"generated 3 shops, \d+ staff, 90 customers", out), out
        assert scale_digest.main([*argv, "--reuse", "--generate-only"]) == 0
        out = capsys.readouterr().out
        assert "reusing generated data" in out, out
        assert scale_digest.main([*argv, "--shops", "4", "--reuse", "--generate-only"]) == 1
        assert "other parameters" in capsys.readouterr().out
    finally:
        Cluster(base).remove()
    assert not base.exists()
