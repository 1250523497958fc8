"""An imported order answers a pending follow-up as a chat order would; old history does not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from app.channels.outbox import OutboxPusher
from app.clock import FixedClock, local_today
from app.config import Settings
from app.customers.models import Customer
from app.dataio.imports import ImportResult
from app.db import read_session, write_session
from app.digest.service import run_digest
from app.events.models import Event
from app.outreach.models import FollowUp
from app.outreach.outcomes import record_outcome
from app.shops.models import Shop
from tests.conftest import TEST_TODAY
from tests.factories import add_orders, make_customer


def _overdue_with_followups(
    engine: Engine, clock: FixedClock, settings: Settings, shop: Shop
) -> dict[str, FollowUp]:
    assert shop.id is not None
    for name, silent in (("王姐", 30), ("老李", 35)):
        customer = make_customer(engine, clock, shop, name)
        last = TEST_TODAY - timedelta(days=silent)
        add_orders(engine, clock, shop, customer, [last - timedelta(days=10 * i) for i in range(6)])
    result = run_digest(
        engine=engine, shop_id=shop.id, day=local_today(clock, shop.timezone),
        settings=settings, clock=clock, pushers=[OutboxPusher(engine=engine, clock=clock)],
    )  # fmt: skip
    assert result.status == "sent"
    with read_session(engine) as s:
        rows = s.exec(select(FollowUp, Customer.name).join(Customer)).all()
        return {name: row for row, name in rows}


def test_an_imported_order_after_contact_is_a_win_back_and_older_rows_change_nothing(
    engine: Engine,
    clock: FixedClock,
    settings: Settings,
    shop: Shop,
    write_csv: Callable[..., Path],
    run_import: Callable[..., ImportResult],
) -> None:
    followups = _overdue_with_followups(engine, clock, settings, shop)
    assert set(followups) == {"王姐", "老李"}
    with write_session(engine) as s:
        fresh = s.get(Shop, shop.id)
        row = s.get(FollowUp, followups["王姐"].id)
        assert fresh is not None and row is not None
        record_outcome(session=s, shop=fresh, followup=row, outcome="sent", clock=clock,
                       staff_id=None)  # fmt: skip
    clock.advance(days=2)
    day = TEST_TODAY + timedelta(days=1)
    old = TEST_TODAY - timedelta(days=200)
    result = run_import(
        shop,
        write_csv([
            ["客户", "日期", "数量"],
            ["王姐", day.isoformat(), "2"],   # after the message: she came back
            ["老李", old.isoformat(), "1"],   # history from before: nothing to answer
        ]),
    )  # fmt: skip
    assert result.orders_added == 2
    with read_session(engine) as s:
        wang = s.get(FollowUp, followups["王姐"].id)
        li = s.get(FollowUp, followups["老李"].id)
        assert wang is not None and li is not None
        assert (wang.status, wang.outcome) == ("closed", "recovered")
        assert wang.recovered_order_id is not None
        assert (li.status, li.outcome) == ("open", None)
        credit = s.exec(
            select(Event).where(Event.kind == "outcome", Event.customer_id == wang.customer_id)
        ).one()
        assert credit.data["attributed"] is True and credit.source == "order"
        customer = s.get(Customer, wang.customer_id)
        assert customer is not None and "召回客户" in customer.tags
