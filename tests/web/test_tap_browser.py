"""The digest's tap page in a real headless Chromium at phone size, against the real app.

The morning digest is built on the live server's own database (run_digest with the local
outbox), the item links are taken from what was stored for delivery, and the page is opened
as the owner would from WeChat: read the script, tap a choice, see it recorded.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, ViewportSize, expect
from sqlalchemy import Engine, func
from sqlmodel import col, select

from app.channels.outbox import OutboxPusher
from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer
from app.db import read_session
from app.digest.build import choices_for
from app.digest.models import DigestDelivery
from app.digest.service import run_digest
from app.events.models import Event
from app.outreach.models import FollowUp, LinkUse
from app.shops.models import Shop
from tests.conftest import TEST_TODAY

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Item:
    followup_id: int
    tier: int
    name: str
    path: str


@dataclass
class TapPage:
    """A phone-sized page on the live server, with the JS errors and dialogs it produced."""

    page: Page
    base_url: str
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def open(self, path: str) -> None:
        response = self.page.goto(f"{self.base_url}{path}")
        assert response is not None and response.status == 200, path


def delivered_items(engine: Engine, shop_id: int) -> list[Item]:
    out: list[Item] = []
    with read_session(engine) as session:
        for delivery in session.exec(
            select(DigestDelivery)
            .where(DigestDelivery.shop_id == shop_id)
            .order_by(col(DigestDelivery.id))
        ):
            for raw in delivery.items:
                followup = session.get(FollowUp, int(raw["followup_id"]))
                assert followup is not None and followup.id is not None
                customer = session.get(Customer, followup.customer_id)
                assert customer is not None
                path = urlsplit(str(raw["url"])).path
                assert path.startswith("/t/")
                out.append(Item(followup.id, followup.tier, customer.name, path))
    assert out, "the demo digest has no items"
    return out


def get_followup(engine: Engine, followup_id: int) -> FollowUp:
    with read_session(engine) as session:
        followup = session.get(FollowUp, followup_id)
        assert followup is not None
        return followup


def writes(engine: Engine) -> tuple[int, int]:
    with read_session(engine) as session:
        events = session.exec(select(func.count()).select_from(Event)).one()
        uses = session.exec(select(func.count()).select_from(LinkUse)).one()
    return events, uses


@pytest.fixture
def items(
    live_server: str, engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> list[Item]:
    """Today's digest for the demo shop, built on the live server's database."""
    assert demo_shop.id is not None
    result = run_digest(
        engine=engine,
        shop_id=demo_shop.id,
        day=TEST_TODAY,
        settings=settings,
        clock=clock,
        pushers=[OutboxPusher(engine=engine, clock=clock)],
    )
    assert result.status == "sent", result
    return delivered_items(engine, demo_shop.id)


@pytest.fixture
def phone(chromium_browser: Browser) -> Iterator[BrowserContext]:
    """A fresh 390x844 phone context (the size of a current mid-range phone)."""
    context = chromium_browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
    )
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def tap_page(phone: BrowserContext, live_server: str) -> Iterator[TapPage]:
    page = phone.new_page()
    tp = TapPage(page=page, base_url=live_server)

    def on_dialog(dialog: Dialog) -> None:
        tp.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda err: tp.page_errors.append(str(err)))
    yield tp
    assert tp.page_errors == [], f"JavaScript errors on the tap page: {tp.page_errors}"
    assert tp.dialogs == [], f"a dialog fired: {tp.dialogs}"


def by_name(items: list[Item], name: str) -> Item:
    return next(i for i in items if i.name == name)


def first_of_tier(items: list[Item], tier: int) -> Item:
    return next(i for i in items if i.tier == tier)


# --- tests ---------------------------------------------------------------------------------------


def test_tap_a_choice_and_see_it_recorded(
    tap_page: TapPage, items: list[Item], engine: Engine, tmp_path: Path
) -> None:
    page = tap_page.page
    wang = by_name(items, "王姐")
    assert wang.tier == 1
    tap_page.open(wang.path)

    expect(page).to_have_title(re.compile("王姐"))
    expect(page.get_by_test_id("customer-name")).to_have_text("王姐")
    script = page.get_by_test_id("script")
    expect(script).to_be_visible()
    expect(script).to_contain_text("王姐")
    expect(page.get_by_test_id("call")).to_have_attribute("href", re.compile(r"^tel:\+?\d{7,}$"))
    expect(page.get_by_test_id("call")).to_contain_text("****")  # the number is shown masked
    choices = page.get_by_test_id("choice")
    labels = [str(c["label"]) for c in choices_for(1)]
    expect(choices).to_have_text(labels)
    # Fits the phone: nothing sticks out sideways; every choice is a thumb-sized target.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for i in range(choices.count()):
        box = choices.nth(i).bounding_box()
        assert box is not None and box["height"] >= 44 and box["x"] + box["width"] <= PHONE["width"]
    assert get_followup(engine, wang.followup_id).outcome is None

    with page.expect_navigation():
        choices.filter(has_text="已发消息").tap()

    flash = page.get_by_test_id("flash")
    expect(flash).to_be_visible()
    expect(flash).to_contain_text("已记")
    expect(flash).to_contain_text("王姐")
    expect(flash).to_contain_text("已发消息")
    expect(page.get_by_test_id("state")).to_contain_text("已经记过一次")
    expect(page.get_by_test_id("choice")).to_have_count(0)

    followup = get_followup(engine, wang.followup_id)
    assert (followup.outcome, followup.status) == ("sent", "contacted")
    assert followup.first_contact_at is not None
    with read_session(engine) as session:
        kinds = [
            e.kind
            for e in session.exec(select(Event).where(Event.customer_id == followup.customer_id))
            if (e.data or {}).get("followup_id") == wang.followup_id
        ]
    assert kinds == ["outreach"]

    # Reloading (or opening the link again) shows the recorded state, never the choices.
    page.reload()
    expect(page.get_by_test_id("choice")).to_have_count(0)
    expect(page.get_by_test_id("state")).to_be_visible()
    tap_page.open(wang.path)
    expect(page.get_by_test_id("choice")).to_have_count(0)
    expect(page.get_by_test_id("state")).to_contain_text("已经记过一次")
    # What is on record, read back from the database (the URL carries nothing).
    expect(page.get_by_test_id("flash")).to_contain_text("已发消息")

    shot = tmp_path / "tap-390.png"
    page.screenshot(path=str(shot), full_page=False)
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (PHONE["width"] * 2, PHONE["height"] * 2)


def test_type_what_an_offer_cost_and_tap_the_outcome(
    tap_page: TapPage, items: list[Item], engine: Engine
) -> None:
    page = tap_page.page
    item = first_of_tier(items, 2)
    tap_page.open(item.path)
    box = page.get_by_test_id("cost")
    expect(box).to_be_visible()
    box.fill("25")
    with page.expect_navigation():
        page.get_by_test_id("choice").filter(has_text="打过电话").tap()
    expect(page.get_by_test_id("flash")).to_contain_text("优惠花费25元")
    followup = get_followup(engine, item.followup_id)
    assert (followup.outcome, followup.cost_cents) == ("called", 2500)


def test_a_second_tap_from_a_stale_page_is_refused(
    tap_page: TapPage, phone: BrowserContext, items: list[Item], engine: Engine
) -> None:
    """The link was opened twice (the WeChat chat and a browser tab); both show the choices.
    The first tap records; the second, from the page that still shows them, must not."""
    page = tap_page.page
    item = first_of_tier(items, 2)
    tap_page.open(item.path)
    stale = phone.new_page()
    stale.on("pageerror", lambda err: tap_page.page_errors.append(str(err)))
    stale.goto(f"{tap_page.base_url}{item.path}")
    expect(stale.get_by_test_id("choice")).to_have_count(len(choices_for(2)))

    with page.expect_navigation():
        page.get_by_test_id("choice").filter(has_text="打过电话").tap()
    expect(page.get_by_test_id("flash")).to_contain_text("已记")
    before = writes(engine)

    with stale.expect_navigation() as nav:
        stale.get_by_test_id("choice").filter(has_text="没回").tap()
    response = nav.value
    assert response is not None and response.status == 409
    expect(stale.get_by_test_id("error")).to_contain_text("已经记过一次")
    expect(stale.get_by_test_id("choice")).to_have_count(0)
    assert writes(engine) == before
    assert get_followup(engine, item.followup_id).outcome == "called"

    # The back button brings no usable form back either.
    page.go_back()
    expect(page.get_by_test_id("choice")).to_have_count(0)
    expect(page.get_by_test_id("state")).to_contain_text("已经记过一次")
    assert writes(engine) == before


def test_a_closing_choice_shows_what_was_recorded(
    tap_page: TapPage, items: list[Item], engine: Engine
) -> None:
    page = tap_page.page
    item = first_of_tier(items, 2)
    tap_page.open(item.path)
    expect(page.get_by_test_id("copy")).to_have_count(0)  # a call script is said, not sent
    with page.expect_navigation():
        page.get_by_test_id("choice").filter(has_text="流失·价格").tap()
    expect(page.get_by_test_id("state")).to_contain_text("已记录:流失")
    followup = get_followup(engine, item.followup_id)
    assert (followup.status, followup.outcome, followup.outcome_reason) == (
        "closed",
        "lost",
        "price",
    )


def test_the_copy_button_copies_the_tier_1_message(
    tap_page: TapPage, phone: BrowserContext, items: list[Item], live_server: str
) -> None:
    page = tap_page.page
    phone.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    wang = by_name(items, "王姐")
    tap_page.open(wang.path)
    copy = page.get_by_test_id("copy")
    expect(copy).to_be_visible()
    expect(copy).to_contain_text("复制")
    script = page.get_by_test_id("script").text_content()
    assert script and "王姐" in script

    copy.tap()
    expect(copy).to_contain_text("已复制")
    assert page.evaluate("navigator.clipboard.readText()") == script
    # Copying is not recording: the choices are still there.
    expect(page.get_by_test_id("choice")).to_have_count(len(choices_for(1)))


def test_a_refused_link_shows_a_plain_explanation(
    tap_page: TapPage, items: list[Item], engine: Engine, clock: FixedClock, settings: Settings
) -> None:
    page = tap_page.page
    item = first_of_tier(items, 1)
    clock.advance(hours=settings.link_ttl_hours, seconds=1)
    response = page.goto(f"{tap_page.base_url}{item.path}")
    assert response is not None and response.status == 403
    expect(page.get_by_test_id("error")).to_contain_text("过期")
    expect(page.get_by_test_id("choice")).to_have_count(0)
    assert get_followup(engine, item.followup_id).outcome is None
