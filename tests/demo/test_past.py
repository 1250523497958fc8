"""The demo a new owner first sees: six months of use lived through the real code paths.

Loaded once here (about half a minute); every figure the report shows must be a real one.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import Engine, func, select
from sqlmodel import col

from app.channels.models import OutboxMessage
from app.clock import FixedClock
from app.config import Settings
from app.db import read_session
from app.demo.load import load_demo
from app.demo.past import PAST_DAYS
from app.events.models import Event
from app.outreach.models import FollowUp
from app.reports.metrics import build_report
from app.reports.monthly import month_of
from tests.conftest import TEST_TODAY, ChatDriver


def test_the_demo_has_six_months_of_use_behind_it(
    engine: Engine, clock: FixedClock, settings: Settings
) -> None:
    shop, created = load_demo(engine=engine, clock=clock, past=settings)
    assert created and shop.id is not None
    with read_session(engine) as session:
        # A digest every morning of the lived days, pushed to the owner's local inbox.
        pushed = session.execute(
            select(func.count())
            .select_from(OutboxMessage)
            .where(col(OutboxMessage.shop_id) == shop.id)
        ).scalar_one()
        assert pushed == PAST_DAYS + 1
        followups = session.execute(
            select(FollowUp.tier, FollowUp.outcome).where(col(FollowUp.shop_id) == shop.id)
        ).all()
        tiers = Counter(t for t, _ in followups)
        assert all(tiers[t] > 0 for t in (0, 1, 2, 3)), tiers  # message, call, visit, care
        outcomes = Counter(o for _, o in followups)
        assert outcomes["recovered"] > 0 and outcomes["lost"] > 0, outcomes
        # Answers were recorded as taps, losses with their reasons.
        reasons = session.execute(
            select(Event.data).where(
                col(Event.shop_id) == shop.id, col(Event.kind) == "outcome",
                col(Event.source) == "tap",
            )
        ).scalars().all()  # fmt: skip
        assert {d.get("reason") for d in reasons if d.get("outcome") == "lost"} - {None}
        # Today's digest is there, unanswered: the list the new owner starts with.
        today = session.execute(
            select(func.count()).select_from(FollowUp).where(
                col(FollowUp.shop_id) == shop.id, col(FollowUp.created_on) == TEST_TODAY,
                col(FollowUp.outcome).is_(None),
            )
        ).scalar_one()  # fmt: skip
        assert today > 0
        last_month = build_report(
            session=session, shop=shop, first_day=month_of(TEST_TODAY, 1), clock=clock
        )
    # Every part of the report has figures: churn, reasons, win-backs, 48 hours, money.
    assert last_month.month.lost > 0 and (last_month.month.churn_rate or 0) > 0
    assert any(r.reason for r in last_month.reasons_quarter), last_month.reasons_quarter
    assert sum(w.recovered for w in last_month.by_tier) > 0
    assert last_month.process.within_48h > 0
    assert last_month.money.offer_cost_cents > 0 and last_month.money.revenue_recovered_cents > 0
    assert min(m.churn_rate or 0 for m in last_month.trend[-6:]) > 0
    # What the owner reads on first start.
    chat = ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref="demo")
    month = chat.say("上月统计")
    assert "月流失率 0.0%" not in month and "本月还没联系过" not in month
    assert "💰 优惠花了" in month and "48小时内联系上" in month
    assert date(2026, 5, 1) == month_of(TEST_TODAY, 1)
