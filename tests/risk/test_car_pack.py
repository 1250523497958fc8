"""The car service pack: counted from the service cycle (cycle + 30 days yellow, + 90 red,
six months overdue lost) and valued over the years a car is serviced (CLV tiers), by default."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer, CustomerSummary
from app.customers.risk import rescore_shop, risk_config
from app.db import read_session, write_session
from app.flows import record_order
from app.outreach.service import plan_day
from app.risk.config import RiskConfig
from app.shops.models import Shop
from app.shops.service import get_shop
from tests.conftest import TEST_TODAY, ChatDriver
from tests.factories import make_customer, make_shop

CYCLE = 181  # days between services: a car serviced twice a year


def services(
    engine: Engine, clock: FixedClock, shop: Shop, name: str, *, overdue: int,
    count: int = 4, amount_yuan: int = 800,
) -> Customer:  # fmt: skip
    """A customer serviced every CYCLE days, the last visit CYCLE + `overdue` days ago."""
    customer = make_customer(engine, clock, shop, name)
    last = TEST_TODAY - timedelta(days=CYCLE + overdue)
    tz = ZoneInfo(shop.timezone)
    with write_session(engine) as session:
        for k in reversed(range(count)):
            day = last - timedelta(days=CYCLE * k)
            record_order(
                session=session, shop=shop, customer=customer, quantity=1, clock=clock,
                amount_cents=amount_yuan * 100, ordered_at=datetime.combine(day, time(10), tz),
                source="api",
            )  # fmt: skip
    return customer


def nightly_rescore(engine: Engine, clock: FixedClock, slug: str) -> None:
    """What the nightly job does: fit the shop's priors on its history, rewrite summaries."""
    with write_session(engine) as session:
        rescore_shop(session=session, shop=get_shop(session=session, ref=slug), clock=clock)


def stages(engine: Engine, shop: Shop) -> dict[str, str]:
    with read_session(engine) as session:
        rows = session.exec(
            select(Customer.name, CustomerSummary.stage)
            .join(CustomerSummary, CustomerSummary.customer_id == Customer.id)  # type: ignore[arg-type]
            .where(Customer.shop_id == shop.id)
        ).all()
    return {name: stage for name, stage in rows}


@pytest.fixture
def car_shop(engine: Engine, clock: FixedClock) -> Shop:
    shop = make_shop(engine, clock, slug="car-a", name="老马汽修", industry="car")
    services(engine, clock, shop, "赵先生", overdue=20)
    services(engine, clock, shop, "钱女士", overdue=35)
    services(engine, clock, shop, "孙总", overdue=95)
    services(engine, clock, shop, "李师傅", overdue=190)
    services(engine, clock, shop, "周老师", overdue=-60)  # serviced four months ago
    nightly_rescore(engine, clock, shop.slug)
    return shop


def test_car_customers_turn_yellow_red_and_lost_by_the_service_cycle(
    engine: Engine, settings: Settings, clock: FixedClock, car_shop: Shop
) -> None:
    owner = ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref=car_shop.slug)
    followups = owner.say("今天该跟进谁")
    assert "今天该跟进 2 位老客户" in followups
    assert "🟡钱女士 216天没来" in followups  # cycle + 35
    assert "🔴孙总 276天没来" in followups  # cycle + 95
    assert "赵先生" not in followups and "周老师" not in followups  # cycle + 20: still fine
    assert "李师傅" not in followups  # six months overdue: lost, off the follow-up list
    assert owner.say("赵先生").startswith("📇 赵先生 · 正常")
    assert owner.say("钱女士").startswith("📇 钱女士 · 需关注")
    assert owner.say("孙总").startswith("📇 孙总 · 高风险")
    assert owner.say("李师傅").startswith("📇 李师傅 · 已流失")
    assert stages(engine, car_shop) == {
        "赵先生": "active", "钱女士": "quiet", "孙总": "at_risk", "李师傅": "lost",
        "周老师": "active",
    }  # fmt: skip


def test_car_stage_dates_sit_on_cycle_plus_30_90_and_180(
    engine: Engine, clock: FixedClock, car_shop: Shop
) -> None:
    with read_session(engine) as session:
        summary = session.exec(
            select(CustomerSummary)
            .join(Customer, CustomerSummary.customer_id == Customer.id)  # type: ignore[arg-type]
            .where(Customer.name == "赵先生")
        ).one()
    assert summary.last_order_on is not None and summary.expected_interval_days is not None
    cycle = summary.expected_interval_days
    assert cycle == pytest.approx(CYCLE, abs=5)  # the engine's usual interval, near the cycle
    after = {
        "check_on": (summary.check_on - summary.last_order_on).days,
        "red_on": (summary.red_on - summary.last_order_on).days,
        "lost_on": (summary.lost_on - summary.last_order_on).days,
    }
    for field, extra in (("check_on", 30), ("red_on", 90), ("lost_on", 180)):
        assert after[field] == pytest.approx(cycle + extra, abs=1.01), field


def test_one_car_customer_goes_from_active_to_lost_as_the_days_pass(
    engine: Engine, clock: FixedClock
) -> None:
    """One customer, rescored nightly as time passes after the last visit."""
    shop = make_shop(engine, clock, slug="car-b", name="快修店", industry="car")
    customer = services(engine, clock, shop, "吴先生", overdue=-CYCLE + 1)  # serviced yesterday
    nightly_rescore(engine, clock, shop.slug)
    with read_session(engine) as session:
        summary = session.get(CustomerSummary, customer.id)
    assert summary is not None and summary.last_order_on == TEST_TODAY - timedelta(days=1)
    cycle = summary.expected_interval_days or 0.0

    def stage_after(days: int) -> str:
        clock.current = FixedClock.at_local(summary.last_order_on + timedelta(days=days)).current
        nightly_rescore(engine, clock, shop.slug)
        return stages(engine, shop)["吴先生"]

    assert stage_after(round(cycle) + 20) == "active"
    assert stage_after(round(cycle) + 35) == "quiet"
    assert stage_after(round(cycle) + 95) == "at_risk"
    assert stage_after(round(cycle) + 185) == "lost"


def test_car_shops_made_before_the_defaults_get_them_without_a_migration(
    engine: Engine, clock: FixedClock
) -> None:
    """An older car shop kept only unit, price, interval and lost_min_days in its settings."""
    shop = make_shop(engine, clock, slug="car-old", name="老店", industry="car")
    with write_session(engine) as session:
        own = get_shop(session=session, ref=shop.slug)
        own.settings = {"unit": "次", "unit_price_cents": None, "default_interval_days": 120.0,
                        "lost_min_days": 180}  # fmt: skip
        session.add(own)
    with read_session(engine) as session:
        config = risk_config(get_shop(session=session, ref=shop.slug))
    assert (config.quiet_extra_days, config.at_risk_extra_days, config.lost_extra_days) == (
        30, 90, 180,
    )  # fmt: skip
    assert config.clv_horizon_days == 5 * 365


def test_a_car_shop_setting_still_wins_over_the_pack_default() -> None:
    config = RiskConfig.from_settings({"quiet_extra_days": 14}, "car")
    assert config.quiet_extra_days == 14 and config.at_risk_extra_days == 90


def test_water_and_retail_shops_keep_the_plain_ratios(engine: Engine, clock: FixedClock) -> None:
    for industry in ("water", "retail"):
        shop = make_shop(engine, clock, slug=f"s-{industry}", industry=industry)
        config = risk_config(shop)
        assert config == RiskConfig.from_settings(shop.settings)
        assert (config.quiet_extra_days, config.at_risk_extra_days, config.lost_extra_days) == (
            0, 0, 0,
        )  # fmt: skip
        assert config.clv_horizon_days == 365


def test_a_big_spender_at_a_car_shop_is_platinum_and_the_owners_to_handle(
    engine: Engine, clock: FixedClock
) -> None:
    """CLV tiers count: 8000 yuan a visit over the years a car is serviced is platinum
    (40-80k), so the owner handles them personally; an 800-yuan regular is silver and staff
    may send the message. (Valued over one year, both were silver.)"""
    shop = make_shop(engine, clock, slug="car-c", name="名车保养", industry="car")
    services(engine, clock, shop, "陈总", overdue=35, amount_yuan=8000)
    services(engine, clock, shop, "小林", overdue=35, amount_yuan=800)
    nightly_rescore(engine, clock, shop.slug)
    with read_session(engine) as session:
        plan = plan_day(session=session, shop=get_shop(session=session, ref=shop.slug),
                        today=TEST_TODAY)  # fmt: skip
    by_name = {item.customer.name: item for item in plan}
    assert by_name["陈总"].facts.clv_tier == "platinum"
    assert by_name["陈总"].facts.value_class != "A"  # the tier alone makes them the owner's
    assert by_name["陈总"].step.owner_role == "owner"
    assert by_name["小林"].facts.clv_tier == "silver"
    assert by_name["小林"].step.owner_role == "staff"
