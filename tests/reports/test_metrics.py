"""The June 2026 report of the hand-counted ten-customer shop (tests/reports/conftest.py)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer, CustomerSummary
from app.db import read_session, write_session
from app.orders.models import Order
from app.reports.metrics import ShopReport, build_report, weekly_list
from app.reports.monthly import first_order_days, month_summary
from app.shops.models import Shop
from tests.conftest import ChatDriver
from tests.factories import add_orders, make_customer, make_shop
from tests.reports.conftest import Scenario

JUNE = date(2026, 6, 1)


def report_for(scenario: Scenario, first_day: date = JUNE) -> ShopReport:
    with read_session(scenario.engine) as session:
        shop = session.get(Shop, scenario.shop.id)
        assert shop is not None
        return build_report(session=session, shop=shop, first_day=first_day, clock=scenario.clock)


def test_churn_this_month_and_last(scenario: Scenario) -> None:
    report = report_for(scenario)
    june, may = report.month, report.previous
    assert may is not None and may.first_day == date(2026, 5, 1)
    # May: all ten had ordered before 5/1; 赵姨 lost (别家).
    assert (may.customers_at_start, may.lost, may.lost_unavoidable) == (10, 1, 0)
    assert may.churn_rate == pytest.approx(0.1)
    # June: ten minus 赵姨 = 9 at the start; lost 王姐 (价格), 李哥 (搬家), 冯阿姨 (价格).
    assert (june.customers_at_start, june.lost, june.lost_unavoidable) == (9, 3, 1)
    assert june.lost_avoidable == 2
    assert june.churn_rate == pytest.approx(3 / 9)
    assert june.avoidable_rate == pytest.approx(2 / 9)
    assert june.unavoidable_rate == pytest.approx(1 / 9)
    assert june.recovered == 1  # 孙叔 ordered again after the call
    assert june.partial and not may.partial


def test_trend_is_twelve_months_ending_with_the_report_month(scenario: Scenario) -> None:
    trend = report_for(scenario).trend
    assert [m.first_day for m in trend][:2] == [date(2025, 7, 1), date(2025, 8, 1)]
    assert trend[-1].first_day == JUNE and len(trend) == 12
    # Before March nobody had ordered: nobody at the start, no rate.
    assert trend[0].customers_at_start == 0 and trend[0].churn_rate is None
    # 1 April: the five who first ordered in March (C1-C5); 1 May: all ten.
    april = next(m for m in trend if m.first_day == date(2026, 4, 1))
    assert (april.customers_at_start, april.lost) == (5, 0)


def test_trend_agrees_with_the_month_summary(scenario: Scenario) -> None:
    """The month summary, reading the first-order histogram or given the trend's, against
    the trend and against the orders themselves (ordered before the month, new in it)."""
    report = report_for(scenario)
    with read_session(scenario.engine) as session:
        shop = session.get(Shop, scenario.shop.id)
        assert shop is not None and shop.id is not None
        first_order: dict[int, date] = {}
        for order in session.exec(select(Order).where(Order.shop_id == shop.id)):
            day = first_order.get(order.customer_id)
            first_order[order.customer_id] = min(day, order.order_date) if day else order.order_date
        histogram = first_order_days(session, shop.id)
        for month in report.trend[-4:]:
            counted = month_summary(
                session=session, shop=shop, first_day=month.first_day, today=report.today
            )
            from_histogram = month_summary(
                session=session,
                shop=shop,
                first_day=month.first_day,
                today=report.today,
                first_orders=histogram,
            )
            assert counted == from_histogram, month.first_day
            assert (counted.customers_at_start, counted.lost, counted.recovered) == (
                month.customers_at_start,
                month.lost,
                month.recovered,
            ), month.first_day
            new = [d for d in first_order.values() if counted.first_day <= d <= counted.last_day]
            assert counted.new_customers == len(new), month.first_day
            ordered = [c for c, d in first_order.items() if d < counted.first_day]
            assert counted.customers_at_start <= len(ordered)


def test_loss_reasons_by_month_and_quarter(scenario: Scenario) -> None:
    report = report_for(scenario)
    month = [(r.reason, r.count, round(r.share, 4), r.unavoidable) for r in report.reasons_month]
    assert month == [("价格", 2, 0.6667, False), ("搬家/倒闭", 1, 0.3333, True)]
    assert report.quarter == (2026, 2)
    quarter = [(r.reason, r.count, r.share) for r in report.reasons_quarter]
    # April-June: 王姐 and 冯阿姨 (价格), 李哥 (搬家/倒闭), 赵姨 in May (竞争对手).
    assert quarter == [("价格", 2, 0.5), ("搬家/倒闭", 1, 0.25), ("竞争对手", 1, 0.25)]


def test_process_warnings_and_48_hours(scenario: Scenario) -> None:
    process = report_for(scenario).process
    # June episodes: 孙叔 (in time), 周老师 (late), 郑师傅 (missed), 吴会计 (still waiting);
    # 冯阿姨's warning was on 5/20, a May episode.
    assert (process.warnings, process.within_48h, process.late) == (4, 1, 1)
    assert (process.missed, process.waiting) == (1, 1)
    assert process.within_48h_rate == pytest.approx(1 / 3)
    tiers = {t.tier: (t.proposed, t.done) for t in process.tiers}
    assert tiers == {1: (3, 1), 2: (1, 1), 3: (1, 1)}


def test_winback_by_tier_reason_and_template(scenario: Scenario) -> None:
    report = report_for(scenario)
    tier = {w.key: (w.contacted, w.recovered, w.cost_cents) for w in report.by_tier}
    assert tier == {"1": (1, 0, 0), "2": (1, 1, 2000), "3": (1, 0, 0)}
    assert [w.key for w in report.by_tier] == ["1", "2", "3"]
    template = {w.key: (w.contacted, w.recovered) for w in report.by_template}
    assert template == {
        "outreach/tier1_message.txt.j2": (1, 0),
        "outreach/tier2_call.txt.j2": (1, 1),
        "outreach/tier3_offer.txt.j2": (1, 0),
    }
    # The reason the contact found out: 冯阿姨 price; none asked of 孙叔 and 周老师.
    reason = {w.key: (w.contacted, w.recovered) for w in report.by_reason}
    assert reason == {"unknown": (2, 1), "price": (1, 0)}
    assert report.by_reason[0].rate == pytest.approx(0.5)


def test_money_cost_revenue_and_clv(scenario: Scenario) -> None:
    report = report_for(scenario)
    money = report.money
    assert money.offer_cost_cents == 2000  # the 20元 offer on the call
    assert money.recovered_customers == 1
    assert money.revenue_recovered_cents == 15000  # 孙叔's 150元 order on 6/10
    assert money.return_per_yuan == pytest.approx(7.5)
    with read_session(scenario.engine) as session:
        summary = session.get(CustomerSummary, scenario.customers["C4"].id)
        assert summary is not None and summary.clv_cents > 0
        assert money.clv_saved_cents == summary.clv_cents


def test_revenue_counts_90_days_from_the_first_order_back(scenario: Scenario) -> None:
    from app.flows import record_order

    c4 = scenario.customers["C4"]
    with write_session(scenario.engine) as session:
        shop = session.get(Shop, scenario.shop.id)
        customer = session.get(Customer, c4.id)
        assert shop is not None and customer is not None
        record_order(
            session=session,
            shop=shop,
            customer=customer,
            quantity=2,
            amount_cents=3600,
            clock=scenario.clock,
            source="api",
        )
    assert report_for(scenario).money.revenue_recovered_cents == 15000 + 3600


def test_last_month_has_no_weekly_list_and_no_june_contacts(scenario: Scenario) -> None:
    may = report_for(scenario, date(2026, 5, 1))
    assert may.weekly is None
    assert may.by_tier == [] and may.money.offer_cost_cents == 0
    # Warnings count in the month the episode began: 冯阿姨 went quiet on 5/20. The digest
    # first proposed her on 6/1 and she was contacted that morning: the 48 hours run from
    # when the owner was told, so that is in time.
    assert (may.process.warnings, may.process.late, may.process.within_48h) == (1, 0, 1)
    assert [(r.reason, r.count) for r in may.reasons_month] == [("竞争对手", 1)]


def test_weekly_list_last_lost_and_common_reason(scenario: Scenario) -> None:
    weekly = report_for(scenario).weekly
    assert weekly is not None
    names = [(c.name, c.lost_on, c.reason, c.unavoidable) for c in weekly.last_lost]
    assert names == [
        ("冯阿姨", date(2026, 6, 12), "价格", False),
        ("李哥", date(2026, 6, 8), "搬家/倒闭", True),
        ("王姐", date(2026, 6, 5), "价格", False),
        ("赵姨", date(2026, 5, 10), "竞争对手", False),
    ]
    assert weekly.common_reason == "价格" and weekly.common_count == 2
    assert weekly.last_lost[0].order_count == 2


def test_weekly_list_skips_d_class_and_takes_ten(
    engine: Engine, clock: FixedClock, scenario: Scenario
) -> None:
    with write_session(engine) as session:
        shop = session.get(Shop, scenario.shop.id)
        assert shop is not None
        due_before = weekly_list(session=session, shop=shop, today=date(2026, 6, 17))
        assert due_before.to_message, "the scenario should have customers due"
        first = due_before.to_message[0].customer
        row = session.get(Customer, first.id)
        assert row is not None
        row.value_class = "D"
        session.add(row)
        session.flush()
        after = weekly_list(session=session, shop=shop, today=date(2026, 6, 17))
    assert first.id not in [d.customer.id for d in after.to_message]
    assert after.due_total == due_before.due_total - 1
    assert len(after.to_message) <= 10
    at_risk = [d.value_at_risk_cents for d in after.to_message]
    assert at_risk == sorted(at_risk, reverse=True)


def test_losses_without_a_reason_count_this_month_up_to_today(
    engine: Engine, clock: FixedClock
) -> None:
    """Nobody marked 甲 or 乙: the engine's lost day makes them lost in June, reason unknown."""
    shop = make_shop(engine, clock, slug="quiet")
    cases = {
        "甲": date(2026, 6, 10),  # counted
        "乙": date(2026, 6, 17),  # counted: today
        "丙": date(2026, 6, 20),  # later this month: not yet
        "丁": date(2026, 5, 30),  # last month
        "戊": date(2026, 6, 3),  # the owner gave the reason: not "原因未记"
    }
    people = {name: make_customer(engine, clock, shop, name) for name in cases}
    for name in cases:
        add_orders(engine, clock, shop, people[name], [date(2026, 3, 1)])
    chat = ChatDriver(engine=engine, settings=Settings(), clock=clock, shop_ref="quiet")
    chat.say("戊 流失 价格")  # today; the engine's day (set below) is 6/3
    with write_session(engine) as session:
        for name, lost_on in cases.items():
            summary = session.get(CustomerSummary, people[name].id)
            assert summary is not None
            summary.lost_on = lost_on
            session.add(summary)
    with read_session(engine) as session:
        fresh = session.get(Shop, shop.id)
        assert fresh is not None
        report = build_report(session=session, shop=fresh, first_day=JUNE, clock=clock)
    assert report.month.lost == 3  # 甲, 乙, 戊
    assert report.unmarked_lost == 2
    assert [(r.reason, r.count) for r in report.reasons_month] == [(None, 2), ("价格", 1)]
    assert report.previous is not None and report.previous.lost == 1  # 丁


def test_empty_shop(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock, slug="empty")
    with read_session(engine) as session:
        fresh = session.get(Shop, shop.id)
        assert fresh is not None
        report = build_report(session=session, shop=fresh, first_day=JUNE, clock=clock)
    assert report.month.churn_rate is None and report.month.customers_at_start == 0
    assert report.reasons_month == [] and report.by_tier == []
    assert report.process.warnings == 0 and report.process.within_48h_rate is None
    assert report.money.return_per_yuan is None
    assert report.weekly is not None and report.weekly.last_lost == []
