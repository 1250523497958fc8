"""Hostile names and messages are stored and shown literally everywhere: chat, digest text,
tap and list pages (escaped), exports (formulas neutralised), WeCom cards."""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from openpyxl import load_workbook
from sqlalchemy import Engine
from sqlmodel import select

from app.channels.outbox import OutboxPusher
from app.channels.pushers import pushers_from_settings
from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer
from app.dataio.exports import export_shop
from app.db import read_session, write_session
from app.digest.build import build_digest
from app.digest.service import run_digest
from app.main import create_app
from app.shops.models import Shop, StaffIdentity
from app.shops.service import owner_of
from tests.channels.fake_provider import FakeProvider
from tests.conftest import TEST_TODAY, ChatDriver
from tests.factories import LOCAL, add_orders, make_customer, make_shop
from tests.web.test_tap_links import delivered_items, list_path

# Names the chat keeps whole (a space or comma separates a name from a phone or address).
CHAT_NAMES = [
    "{{config}}",
    "{%for%}",
    "{{''.__class__.__mro__}}",
    "<script>alert(1)</script>",
    "';DROP-TABLE-orders;--",
    '=HYPERLINK("http://x";"y")',
    "@SUM(A1)",
    "+1+2",
]
# Free text (the address takes the rest of the message, spaces and all).
HOSTILE_ADDRESS = "{{ config }} {% for x in y %}{% endfor %} <b>x</b> '; DROP TABLE orders;--"
# Exact names for the pages, digest and exports (created directly, spaces kept).
NAMES = [
    "{{ config }}",
    "{% for x in range(3) %}A{% endfor %}",
    "<script>alert(1)</script>",
    "'; DROP TABLE orders;--",
    '=HYPERLINK("http://x","y")',
    "-2+3",
    "\u202egnp.exe",  # an RTL override, stored and shown as given
]
FORMULA_START = ("=", "+", "-", "@")


@pytest.fixture
def shop(engine: Engine, clock: FixedClock) -> Shop:
    return make_shop(engine, clock, slug="hostile", name="<i>水站</i>{{ shop }}")


@pytest.fixture
def chat(engine: Engine, settings: Settings, clock: FixedClock, shop: Shop) -> ChatDriver:
    return ChatDriver(engine=engine, settings=settings, clock=clock, shop_ref=shop.slug)


def stored(engine: Engine, shop: Shop) -> dict[str, Customer]:
    with read_session(engine) as session:
        rows = session.exec(select(Customer).where(Customer.shop_id == shop.id)).all()
    return {c.name: c for c in rows}


# --- chat ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CHAT_NAMES)
def test_a_hostile_name_from_chat_is_stored_and_echoed_literally(
    chat: ChatDriver, engine: Engine, shop: Shop, name: str
) -> None:
    created = chat.say(f"新客户 {name} 13800001234 {HOSTILE_ADDRESS}")
    assert created.startswith(f"已新建客户:{name} ·"), created
    customer = stored(engine, shop)[name]
    assert customer.address == HOSTILE_ADDRESS
    # An order for it is recorded, or (a name the order parser cannot tell from noise) the
    # message is kept as a note and quoted back: literally either way.
    recorded = chat.say(f"{name} 2桶")
    assert recorded.startswith(f"已记:{name} 2桶") or f'没有记单:"{name} 2桶"' in recorded
    card = chat.say(name)
    assert name in card
    # Nothing was evaluated: no Jinja output, no config, no class hierarchy.
    for evaluated in ("<class", "Settings(", "data_dir", "AAA"):
        assert evaluated not in created + recorded + card
    assert list(stored(engine, shop)) == [name]


def test_rtl_override_is_dropped_from_a_name_typed_in_chat(
    chat: ChatDriver, engine: Engine, shop: Shop
) -> None:
    reply = chat.say("新客户 王\u202e姐\u2066 13800001234")
    assert "\u202e" not in reply and "\u2066" not in reply
    assert list(stored(engine, shop)) == ["王姐"]
    assert chat.say("王姐 2桶").startswith("已记:王姐 2桶")


def test_a_2000_character_name_is_refused_and_nothing_is_stored(
    chat: ChatDriver, engine: Engine, shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    long_name = "长" * 2000
    for message in (f"新客户 {long_name}", f"{long_name} 2桶", f"新客户 {'长' * 51} 138"):
        reply = chat.say(message)
        assert "没" in reply or "太长" in reply, reply
        chat.say("0")  # decline any question
    assert stored(engine, shop) == {}
    # The web chat refuses the oversized message outright.
    with TestClient(
        create_app(settings=settings, engine=engine, clock=clock), base_url=LOCAL
    ) as client:
        body = {"text": f"新客户 {long_name}", "client_msg_id": "long0001"}
        response = client.post(f"/api/chat/{shop.slug}", json=body)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "text"]]
    assert stored(engine, shop) == {}


# --- digest, pages, exports, WeCom cards ----------------------------------------------


@pytest.fixture
def overdue(engine: Engine, clock: FixedClock, shop: Shop) -> list[str]:
    """Each hostile name as an overdue customer of the shop (on today's list)."""
    days = [TEST_TODAY - timedelta(days=d) for d in (100, 80, 60, 40)]
    for i, name in enumerate(NAMES):
        customer = make_customer(engine, clock, shop, name, phone=f"1390000{i:04d}",
                                 address=HOSTILE_ADDRESS)  # fmt: skip
        add_orders(engine, clock, shop, customer, days)
    return NAMES


def test_digest_text_shows_hostile_names_literally(
    engine: Engine, settings: Settings, clock: FixedClock, shop: Shop, overdue: list[str]
) -> None:
    with read_session(engine) as session:
        own = session.get(Shop, shop.id)
        assert own is not None
        preview = build_digest(session=session, shop=own, day=TEST_TODAY, settings=settings,
                               clock=clock, persist=False)  # fmt: skip
    text = "\n".join(person.text for person in preview.people)
    # The digest lists the first five and links the rest; those it lists are literal.
    shown = [name for name in overdue if name in text]
    assert len(shown) >= 5, text
    assert "AAA" not in text and "&lt;" not in text  # not rendered, not HTML-escaped in chat


@pytest.fixture
def sent_digest(
    engine: Engine, settings: Settings, clock: FixedClock, shop: Shop, overdue: list[str]
) -> None:
    assert shop.id is not None
    outbox = OutboxPusher(engine=engine, clock=clock)
    result = run_digest(engine=engine, shop_id=shop.id, day=TEST_TODAY, settings=settings,
                        clock=clock, pushers=[outbox])  # fmt: skip
    assert result.status == "sent"


@pytest.fixture
def client(engine: Engine, settings: Settings, clock: FixedClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings=settings, engine=engine, clock=clock), base_url=LOCAL) as c:
        yield c


@pytest.mark.usefixtures("sent_digest")
def test_tap_and_list_pages_show_hostile_names_escaped(
    client: TestClient, engine: Engine, shop: Shop, overdue: list[str]
) -> None:
    assert shop.id is not None
    items = delivered_items(engine, shop.id)
    assert {i.name for i in items} == set(overdue)
    for item in items:
        page = client.get(item.path)
        assert page.status_code == 200
        assert str(escape(item.name)) in page.text
        assert "<script>alert(1)</script>" not in page.text
        assert "<b>x</b>" not in page.text and "<i>水站</i>" not in page.text
        assert "AAA" not in page.text
    listing = client.get(list_path(engine, shop.id))
    assert listing.status_code == 200
    assert "<script>alert(1)</script>" not in listing.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing.text
    assert "{{ config }}" in html.unescape(listing.text)


def test_exports_keep_hostile_names_as_text_and_neutralise_formulas(
    engine: Engine, clock: FixedClock, shop: Shop, overdue: list[str], tmp_path: Path
) -> None:
    with read_session(engine) as session:
        own = session.get(Shop, shop.id)
        assert own is not None
        result = export_shop(session=session, shop=own, out_dir=tmp_path, today=TEST_TODAY,
                             with_phones=False)  # fmt: skip
    cells: list[str] = []
    for path in result.files:
        if path.suffix == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as handle:
                cells += [c for row in csv.reader(handle) for c in row]
        elif path.suffix == ".xlsx":
            workbook = load_workbook(path)
            for sheet in workbook.worksheets:
                for row in sheet.iter_rows():
                    for cell in row:
                        assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                        if isinstance(cell.value, str):
                            cells.append(cell.value)
    assert any(p.suffix == ".xlsx" for p in result.files)
    for name in overdue:
        expected = "'" + name if name.startswith(FORMULA_START) else name
        assert expected in cells, name
    # No cell starts a formula, in the CSV files either.
    starting = [c for c in cells if c.startswith(FORMULA_START) and not c.lstrip("-").isdigit()]
    assert not [c for c in starting if not c.replace(".", "", 1).lstrip("-").isdigit()], starting


@pytest.fixture
def wecom_owner(engine: Engine, clock: FixedClock, shop: Shop) -> str:
    with write_session(engine) as session:
        owner = owner_of(session=session, shop=shop)
        assert owner.id is not None and shop.id is not None
        session.add(StaffIdentity(shop_id=shop.id, staff_id=owner.id, channel="wecom",
                                  external_id="LaoBan", created_at=clock.now()))  # fmt: skip
    return "LaoBan"


def _wecom_sends(
    engine: Engine, clock: FixedClock, shop: Shop, channel_settings: Settings,
    provider: FakeProvider,
) -> list[dict[str, object]]:  # fmt: skip
    assert shop.id is not None
    with httpx.Client(timeout=5.0) as http:
        pushers = pushers_from_settings(channel_settings, engine, clock=clock, http=http,
                                        backoff_seconds=0.01)  # fmt: skip
        result = run_digest(engine=engine, shop_id=shop.id, day=TEST_TODAY,
                            settings=channel_settings, clock=clock,
                            pushers=list(pushers))  # fmt: skip
    assert result.status == "sent", result
    return [c.json for c in provider.calls("/cgi-bin/message/send")]


@pytest.mark.usefixtures("wecom_owner")
def test_wecom_cards_carry_hostile_names_literally(
    engine: Engine, clock: FixedClock, shop: Shop, overdue: list[str],
    channel_settings: Settings, provider: FakeProvider,
) -> None:  # fmt: skip
    sends = _wecom_sends(engine, clock, shop, channel_settings, provider)
    cards = [s["template_card"] for s in sends if s["msgtype"] == "template_card"]
    titles = [card["main_title"]["title"] for card in cards]  # type: ignore[index]
    assert len(cards) == len(overdue)
    for name in overdue:
        assert any(title.startswith(name[:20]) for title in titles), (name, titles)
    # JSON on the wire: one document per call, names as plain strings (no template output).
    raw = json.dumps(sends, ensure_ascii=False)
    assert "AAA" not in raw and "Settings(" not in raw


WECOM_MARKDOWN_LINK = "[点我](http://evil.example)"


@pytest.mark.usefixtures("wecom_owner")
def test_wecom_markdown_digest_shows_markup_names_literally(
    engine: Engine, clock: FixedClock, shop: Shop, channel_settings: Settings,
    provider: FakeProvider,
) -> None:  # fmt: skip
    days = [TEST_TODAY - timedelta(days=d) for d in (100, 80, 60, 40)]
    for name in (WECOM_MARKDOWN_LINK, '<font color="warning">急</font>'):
        add_orders(engine, clock, shop, make_customer(engine, clock, shop, name), days)
    sends = _wecom_sends(engine, clock, shop, channel_settings, provider)
    (markdown,) = [s["markdown"]["content"] for s in sends if s["msgtype"] == "markdown"]  # type: ignore[index]
    assert "点我" in markdown and "急" in markdown
    assert "](http://evil.example)" not in markdown
    assert '<font color="warning">' not in markdown
    assert "［点我］(http://evil.example)" in markdown  # the name, as typed, in full-width
    assert markdown.startswith("**")  # the title's own emphasis stays markdown
