"""The report in a real headless Chromium at phone size: the dashboard behind its signed
link (every chart drawn, a screenshot saved), and the chart picture in the web chat."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import Engine
from sqlmodel import col, select

from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer, CustomerSummary
from app.db import write_session
from app.events.service import log_event
from app.outreach.links import link_secret, report_token
from app.shops.models import Shop

pytestmark = pytest.mark.browser

CHARTS = ("trend", "reasons", "process", "winback", "money")


def ink_share(png: bytes) -> float:
    from PIL import Image

    histogram = Image.open(io.BytesIO(png)).convert("L").histogram()
    return sum(histogram[:230]) / sum(histogram)


@pytest.fixture
def marked_demo(engine: Engine, clock: FixedClock, demo_shop: Shop) -> Shop:
    """The demo shop with three losses recorded today, so every chart has bars (customers
    who were active until today: their losses are today's, the latest of the shop)."""
    reasons = (("价格", False), ("搬家/倒闭", True), ("竞争对手", False))
    with write_session(engine) as session:
        customers = session.exec(
            select(Customer)
            .join(CustomerSummary, col(CustomerSummary.customer_id) == col(Customer.id))
            .where(Customer.shop_id == demo_shop.id, CustomerSummary.stage == "active")
            .order_by(col(Customer.id))
        ).all()[:3]
        for customer, (reason, unavoidable) in zip(customers, reasons, strict=True):
            log_event(
                session=session,
                shop_id=demo_shop.id,
                customer_id=customer.id,
                kind="outcome",
                clock=clock,
                data={"outcome": "lost", "reason": reason, "unavoidable": unavoidable},
            )  # type: ignore[arg-type]
            customer.status = "lost"
            session.add(customer)
        LOST_NAMES[:] = [c.name for c in customers]
    return demo_shop


LOST_NAMES: list[str] = []


def test_dashboard_draws_every_chart_on_a_phone(
    live_server: str,
    phone_context: BrowserContext,
    marked_demo: Shop,
    settings: Settings,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    assert marked_demo.id is not None
    token = report_token(
        link_secret(settings),
        shop_id=marked_demo.id,
        month=date(2026, 6, 1),
        now=clock.now(),
        ttl=timedelta(hours=72),
    )
    page = phone_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    response = page.goto(f"{live_server}/r/{token}")
    assert response is not None and response.status == 200
    expect(page.get_by_test_id("churn-rate")).to_contain_text("%")
    expect(page.get_by_test_id("chart")).to_have_count(len(CHARTS))
    for name in CHARTS:
        chart = page.locator(f"img[data-chart='{name}']")
        chart.scroll_into_view_if_needed()
        natural = chart.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
        assert natural[0] and natural[1] == 960 and natural[2] > 200, (name, natural)
        shown = chart.bounding_box()
        assert shown is not None and 300 < shown["width"] <= 375, (name, shown)
        assert ink_share(chart.screenshot()) > 0.003, name  # not blank
    # Nothing but the page itself and its stylesheet came over the network.
    assert all(u.startswith(live_server) or u.startswith("data:") for u in requests), requests
    assert errors == []
    shot = tmp_path / "report-dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    text = page.get_by_test_id("report").inner_text()
    assert "月流失率 = 本月流失的客户 ÷ 月初老客户" in text
    # The three marked today, and those the engine judged lost this month without a mark.
    lost = re.search(r"本月流失 (\d+) 位", text)
    assert lost and int(lost.group(1)) >= 3, text
    assert all(name in text for name in LOST_NAMES)  # the last lost, for the weekly review


def test_chart_picture_shows_in_the_web_chat(
    live_server: str, phone_context: BrowserContext, marked_demo: Shop, tmp_path: Path
) -> None:
    page = phone_context.new_page()
    page.goto(f"{live_server}/chat/{marked_demo.slug}")
    page.get_by_test_id("chat-input").fill("统计图")
    page.get_by_test_id("send-button").click()
    picture = page.get_by_test_id("msg-image").locator("img")
    expect(picture).to_have_count(1, timeout=30_000)
    page.wait_for_function(
        "() => { const i = document.querySelector('.chat-image');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert picture.evaluate("img => img.naturalWidth") == 864
    assert "月流失率" in (picture.get_attribute("alt") or "")
    picture.scroll_into_view_if_needed()
    assert ink_share(picture.screenshot()) > 0.02
    page.screenshot(path=str(tmp_path / "chat-chart.png"))
    # After a reload the picture's alt text stands in (pictures are not kept in storage).
    page.reload()
    expect(page.get_by_test_id("msg-image")).to_contain_text("🖼")
