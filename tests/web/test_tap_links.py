"""The digest's signed links over HTTP: the tap page (/t/) and the full list (/d/).

Every test builds the real digest on the demo shop (run_digest with the local outbox), takes
the links from what was stored for delivery, and drives the app through a TestClient. A link
authorises only its own item in its own shop; a write through it is single-use; a forged,
tampered, expired or foreign link is refused and writes nothing.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, func
from sqlmodel import col, select

from app.channels.outbox import OutboxPusher
from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer
from app.db import read_session, write_session
from app.digest.build import choices_for
from app.digest.models import DigestDelivery
from app.digest.service import run_digest
from app.events.models import Event
from app.main import create_app
from app.outreach.links import item_token, link_secret, list_token
from app.outreach.models import FollowUp, LinkUse
from app.shops.models import Shop
from app.shops.service import owner_of
from tests.conftest import TEST_TODAY
from tests.factories import add_orders, make_customer, make_shop

XSS_NAME = "<script>alert(1)</script>"
ALREADY_USED = "已经记过一次"


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One digest item as delivered: its follow-up, tier and the tap link's path."""

    followup_id: int
    tier: int
    name: str
    title: str
    path: str

    @property
    def token(self) -> str:
        return self.path.removeprefix("/t/")


def build_digest_for(engine: Engine, shop_id: int, settings: Settings, clock: FixedClock) -> None:
    result = run_digest(
        engine=engine,
        shop_id=shop_id,
        day=TEST_TODAY,
        settings=settings,
        clock=clock,
        pushers=[OutboxPusher(engine=engine, clock=clock)],
    )
    assert result.status == "sent", result


def delivered_items(engine: Engine, shop_id: int) -> list[Item]:
    """The items of every delivery of the shop's digest, links reduced to paths."""
    out: list[Item] = []
    with read_session(engine) as session:
        deliveries = session.exec(
            select(DigestDelivery)
            .where(DigestDelivery.shop_id == shop_id)
            .order_by(col(DigestDelivery.id))
        ).all()
        for delivery in deliveries:
            for raw in delivery.items:
                followup = session.get(FollowUp, int(raw["followup_id"]))
                assert followup is not None
                customer = session.get(Customer, followup.customer_id)
                assert customer is not None
                url = str(raw["url"])
                path = urlsplit(url).path
                assert path.startswith("/t/"), url
                out.append(Item(followup.id or 0, followup.tier, customer.name, raw["title"], path))
    assert out, "the digest has no items"
    return out


def list_path(engine: Engine, shop_id: int) -> str:
    """The full-list link from the owner's digest text, as a path."""
    with read_session(engine) as session:
        text = session.exec(
            select(DigestDelivery.text).where(DigestDelivery.shop_id == shop_id)
        ).first()
    assert text is not None
    match = re.search(r"https?://\S+(/d/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)", text)
    assert match is not None, text
    return match.group(1)


def first_of_tier(items: list[Item], tier: int) -> Item:
    found = [i for i in items if i.tier == tier]
    assert found, f"no tier-{tier} item in the demo digest: {items}"
    return found[0]


@dataclass(frozen=True)
class Snapshot:
    """Everything a tap may write."""

    followups: list[tuple[Any, ...]]
    events: int
    link_uses: int
    customers: list[tuple[Any, ...]]


def snapshot(engine: Engine) -> Snapshot:
    with read_session(engine) as session:
        followups = [
            (f.id, f.status, f.outcome, f.outcome_reason, f.outcome_at, f.first_contact_at)
            for f in session.exec(select(FollowUp).order_by(col(FollowUp.id)))
        ]
        events = session.exec(select(func.count()).select_from(Event)).one()
        uses = session.exec(select(func.count()).select_from(LinkUse)).one()
        customers = [
            (c.id, c.status, tuple(c.tags), c.paused_until)
            for c in session.exec(select(Customer).order_by(col(Customer.id)))
        ]
    return Snapshot(followups, events, uses, customers)


def get_followup(engine: Engine, followup_id: int) -> FollowUp:
    with read_session(engine) as session:
        followup = session.get(FollowUp, followup_id)
        assert followup is not None
        return followup


def events_for(engine: Engine, followup_id: int) -> list[Event]:
    with read_session(engine) as session:
        return [
            e
            for e in session.exec(select(Event).order_by(col(Event.id)))
            if (e.data or {}).get("followup_id") == followup_id
        ]


def page_text(response: Response) -> str:
    """The visible text of a page, tags dropped and entities decoded (for Chinese checks)."""
    return unescape(re.sub(r"<[^>]+>", " ", response.text))


def by_testid(response: Response, testid: str) -> list[str]:
    pattern = rf'<(\w+)[^>]*data-testid="{testid}"[^>]*>(.*?)</\1>'
    return [unescape(m.group(2)).strip() for m in re.finditer(pattern, response.text, re.S)]


def flip(text: str, index: int) -> str:
    """`text` with the base64url character at `index` changed to a different one."""
    original = text[index]
    replacement = "A" if original != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def tap(client: TestClient, item_path: str, choice: str) -> Response:
    return client.post(item_path, data={"choice": choice}, follow_redirects=False)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def client(
    engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> Iterator[TestClient]:
    with TestClient(create_app(settings=settings, engine=engine, clock=clock)) as c:
        yield c


@pytest.fixture
def items(
    client: TestClient, engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> list[Item]:
    """Today's digest for the demo shop, built and delivered to the local outbox."""
    assert demo_shop.id is not None
    build_digest_for(engine, demo_shop.id, settings, clock)
    return delivered_items(engine, demo_shop.id)


# --- GET: the tap page -----------------------------------------------------------------------


def test_the_digest_links_point_at_tap_pages_of_its_own_items(
    items: list[Item], demo_shop: Shop, engine: Engine
) -> None:
    assert len({i.followup_id for i in items}) == len(items)
    assert len({i.path for i in items}) == len(items)
    with read_session(engine) as session:
        for item in items:
            followup = session.get(FollowUp, item.followup_id)
            assert followup is not None and followup.shop_id == demo_shop.id
    assert {1, 2} <= {i.tier for i in items}


def test_get_shows_the_customer_the_script_and_the_choices(
    client: TestClient, items: list[Item], engine: Engine
) -> None:
    before = snapshot(engine)
    for tier in sorted({i.tier for i in items}):
        item = first_of_tier(items, tier)
        response = client.get(item.path)
        assert response.status_code == 200, response.text
        assert by_testid(response, "customer-name") == [item.name]
        (script,) = by_testid(response, "script")
        assert len(script) > 10
        labels = [str(c["label"]) for c in choices_for(tier)]
        assert by_testid(response, "choice") == labels
        values = re.findall(r'name="choice" value="([^"]+)"', response.text)
        assert values == [f"{c['outcome']}:{c['arg']}" if c["arg"] else c["outcome"]
                          for c in choices_for(tier)]  # fmt: skip
        assert f'action="{item.path}"' in response.text
        # A tier-1 message can be copied; a call script cannot (it is said, not sent).
        assert (by_testid(response, "copy") != []) == (tier in (0, 1))
    # The customer's number is a tap-to-dial link but shown masked.
    wang = next(i for i in items if i.name == "王姐")
    response = client.get(wang.path)
    assert "王姐" in by_testid(response, "script")[0]
    assert re.search(r'href="tel:\+?\d{7,}"', response.text)
    (call,) = by_testid(response, "call")
    assert "****" in call
    # Looking is free: a GET writes nothing and does not use the link up.
    assert snapshot(engine) == before


# --- POST: recording a choice ----------------------------------------------------------------


def test_post_records_the_choice_and_redirects_to_a_confirmation(
    client: TestClient, items: list[Item], engine: Engine, demo_shop: Shop, clock: FixedClock
) -> None:
    item = next(i for i in items if i.name == "王姐")
    assert item.tier == 1
    assert events_for(engine, item.followup_id) == []

    response = tap(client, item.path, "sent")
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location == item.path  # the confirmation is read back from the database

    followup = get_followup(engine, item.followup_id)
    assert followup.outcome == "sent"
    assert followup.status == "contacted"
    assert followup.first_contact_at is not None and followup.outcome_at is not None
    with read_session(engine) as session:
        owner = owner_of(session=session, shop=demo_shop)
        use = session.get(LinkUse, read_nonce(item))
    assert followup.outcome_staff_id == owner.id
    assert use is not None and use.followup_id == item.followup_id
    kinds = [e.kind for e in events_for(engine, item.followup_id)]
    assert kinds == ["outreach"]
    (outreach,) = events_for(engine, item.followup_id)
    assert outreach.source == "link" and outreach.data["tier"] == 1

    page = client.get(location)
    assert page.status_code == 200
    (flash,) = by_testid(page, "flash")
    assert flash.startswith("已记") and "王姐" in flash and "已发消息" in flash
    # The choices are gone: the page says the link has been used.
    assert by_testid(page, "choice") == []
    assert ALREADY_USED in " ".join(by_testid(page, "state"))


def test_a_reaction_choice_logs_the_outreach_and_the_reaction(
    client: TestClient, items: list[Item], engine: Engine
) -> None:
    item = first_of_tier(items, 2)
    assert tap(client, item.path, "none").status_code == 303
    followup = get_followup(engine, item.followup_id)
    assert (followup.outcome, followup.status) == ("none", "contacted")
    events = events_for(engine, item.followup_id)
    assert [e.kind for e in events] == ["outreach", "interaction"]
    assert events[1].data["reaction"] == "none"


def test_a_closing_choice_shows_the_recorded_state(
    client: TestClient, items: list[Item], engine: Engine
) -> None:
    item = first_of_tier(items, 2)
    response = tap(client, item.path, "lost:price")
    assert response.status_code == 303
    followup = get_followup(engine, item.followup_id)
    assert (followup.status, followup.outcome, followup.outcome_reason) == (
        "closed",
        "lost",
        "price",
    )
    page = client.get(item.path)
    assert by_testid(page, "choice") == []
    (state,) = by_testid(page, "state")
    assert state.startswith("已记录") and "流失" in state


def test_a_second_post_with_the_same_link_is_refused_and_changes_nothing(
    client: TestClient, items: list[Item], engine: Engine
) -> None:
    item = first_of_tier(items, 1)
    assert tap(client, item.path, "sent").status_code == 303
    after_first = snapshot(engine)

    for choice in ("warm", "sent", "cold"):
        again = tap(client, item.path, choice)
        assert again.status_code == 409, again.text
        assert ALREADY_USED in page_text(again)
    assert snapshot(engine) == after_first
    assert get_followup(engine, item.followup_id).outcome == "sent"


def test_other_items_links_still_work_after_one_is_used(
    client: TestClient, items: list[Item], engine: Engine
) -> None:
    first, second = items[0], items[1]
    assert tap(client, first.path, choices_for(first.tier)[0]["outcome"] or "").status_code == 303
    assert tap(client, second.path, choices_for(second.tier)[0]["outcome"] or "").status_code == 303
    assert get_followup(engine, second.followup_id).outcome is not None


# --- refusals ----------------------------------------------------------------------------------


def read_nonce(item: Item) -> str:
    body = item.token.split(".")[0]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return str(payload["n"])


def assert_refused(
    client: TestClient, path: str, engine: Engine, status: int, words: str | None = None
) -> None:
    before = snapshot(engine)
    got = client.get(path)
    assert got.status_code == status, (path, got.text)
    assert by_testid(got, "error"), "a refusal shows the link-error page"
    assert by_testid(got, "choice") == []
    posted = tap(client, path, "sent")
    assert posted.status_code == status, (path, posted.text)
    if words is not None:
        assert words in page_text(got) and words in page_text(posted)
    assert snapshot(engine) == before, "a refused link wrote something"


@pytest.mark.parametrize("part", ["payload", "signature"])
def test_a_tampered_token_is_refused(
    client: TestClient, items: list[Item], engine: Engine, part: str
) -> None:
    item = first_of_tier(items, 1)
    body, mac = item.token.split(".")
    for index in (0, len(body) // 2, len(body) - 2) if part == "payload" else (0, len(mac) // 2):
        token = f"{flip(body, index)}.{mac}" if part == "payload" else f"{body}.{flip(mac, index)}"
        assert token != item.token
        assert_refused(client, f"/t/{token}", engine, 403)
    # The genuine link still works afterwards.
    assert tap(client, item.path, "sent").status_code == 303


def test_a_forged_payload_for_another_item_is_refused(
    client: TestClient, items: list[Item], engine: Engine
) -> None:
    """Re-encode the payload naming another follow-up and keep the old signature."""
    a, b = items[0], items[1]
    body, mac = a.token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["f"] = b.followup_id
    forged = base64.urlsafe_b64encode(
        json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    )
    assert_refused(client, f"/t/{forged.rstrip(b'=').decode()}.{mac}", engine, 403)


@pytest.mark.parametrize(
    "token",
    ["", "nodot", "a.b.c", "....", "%E4%BD%A0.%E5%A5%BD", "x" * 600 + ".y", "e30.e30"],
)
def test_malformed_tokens_are_refused(
    client: TestClient, items: list[Item], engine: Engine, token: str
) -> None:
    if not token:
        assert client.get("/t/").status_code == 404
        return
    assert_refused(client, f"/t/{token}", engine, 403)


def test_an_expired_link_is_refused(
    client: TestClient, items: list[Item], engine: Engine, clock: FixedClock, settings: Settings
) -> None:
    item = first_of_tier(items, 1)
    clock.advance(hours=settings.link_ttl_hours - 1)
    assert client.get(item.path).status_code == 200  # still good an hour before it runs out
    clock.advance(hours=1, seconds=1)
    assert_refused(client, item.path, engine, 403, "过期")
    assert get_followup(engine, item.followup_id).outcome is None


def test_a_link_signed_with_another_secret_is_refused(
    client: TestClient, items: list[Item], engine: Engine, clock: FixedClock, demo_shop: Shop
) -> None:
    assert demo_shop.id is not None
    item = first_of_tier(items, 1)
    token = item_token(
        b"another-service-secret-0123456789abcdef",
        shop_id=demo_shop.id,
        followup_id=item.followup_id,
        now=clock.now(),
        ttl=timedelta(hours=24),
    )
    assert_refused(client, f"/t/{token}", engine, 403)


def test_a_link_for_another_shops_item_is_refused(
    client: TestClient, items: list[Item], engine: Engine, settings: Settings, clock: FixedClock,
    demo_shop: Shop,
) -> None:  # fmt: skip
    # A second shop with one overdue customer and its own digest.
    other = make_shop(engine, clock, slug="other", name="另一家水站")
    assert other.id is not None and demo_shop.id is not None
    customer = make_customer(engine, clock, other, "隔壁赵姐", phone="13900001111")
    add_orders(
        engine, clock, other, customer, [TEST_TODAY - timedelta(days=d) for d in (100, 80, 60, 40)]
    )
    build_digest_for(engine, other.id, settings, clock)
    other_items = delivered_items(engine, other.id)
    foreign = other_items[0]
    assert foreign.name == "隔壁赵姐"
    # Its own link works in its own shop (so what follows is refused for the mismatch only).
    assert client.get(foreign.path).status_code == 200

    secret = link_secret(settings)
    now, ttl = clock.now(), timedelta(hours=settings.link_ttl_hours)
    mine = first_of_tier(items, 1)
    # Validly signed, but the follow-up is not in the shop the link names (either way round).
    crossed = [
        item_token(secret, shop_id=demo_shop.id, followup_id=foreign.followup_id, now=now, ttl=ttl),
        item_token(secret, shop_id=other.id, followup_id=mine.followup_id, now=now, ttl=ttl),
        # No such shop / no such follow-up.
        item_token(secret, shop_id=999_999, followup_id=mine.followup_id, now=now, ttl=ttl),
        item_token(secret, shop_id=demo_shop.id, followup_id=999_999, now=now, ttl=ttl),
    ]
    for token in crossed:
        assert_refused(client, f"/t/{token}", engine, 403)
    assert get_followup(engine, foreign.followup_id).outcome is None
    assert get_followup(engine, mine.followup_id).outcome is None


@pytest.mark.parametrize(
    ("tier", "choice"),
    [
        (1, "called"),  # a tier-2 choice on a tier-1 item
        (1, "lost:price"),
        (1, "recovered"),  # only a tier-3 item offers it
        (1, "returned"),  # never by hand
        (1, "away:7"),
        (1, "sent:extra"),
        (1, "SENT"),
        (2, "sent"),
        (2, "lost:competitor"),  # tier 2 offers lost:price only
        (2, "lost"),
    ],
)
def test_a_choice_not_offered_for_the_tier_is_refused(
    client: TestClient, items: list[Item], engine: Engine, tier: int, choice: str
) -> None:
    item = first_of_tier(items, tier)
    before = snapshot(engine)
    response = tap(client, item.path, choice)
    assert response.status_code == 400, response.text
    assert "没有这个选项" in page_text(response)
    assert snapshot(engine) == before
    # A refused choice does not use the link up.
    good = choices_for(tier)[0]["outcome"]
    assert good is not None
    assert tap(client, item.path, good).status_code == 303


def test_a_missing_or_oversized_choice_is_rejected(
    client: TestClient, items: list[Item], engine: Engine
) -> None:
    item = first_of_tier(items, 1)
    before = snapshot(engine)
    assert client.post(item.path, data={}).status_code == 422
    assert client.post(item.path, data={"choice": "x" * 33}).status_code == 422
    assert snapshot(engine) == before


def test_a_list_token_is_not_an_item_link_and_vice_versa(
    client: TestClient, items: list[Item], engine: Engine, demo_shop: Shop
) -> None:
    path = list_path(engine, demo_shop.id or 0)
    list_tok = path.removeprefix("/d/")
    assert_refused(client, f"/t/{list_tok}", engine, 403)
    item = first_of_tier(items, 1)
    assert client.get(f"/d/{item.token}").status_code == 403


# --- the full list ---------------------------------------------------------------------------


def test_the_full_list_shows_the_persons_items_and_what_was_recorded(
    client: TestClient, items: list[Item], engine: Engine, demo_shop: Shop
) -> None:
    path = list_path(engine, demo_shop.id or 0)
    page = client.get(path)
    assert page.status_code == 200, page.text
    text = page_text(page)
    for item in items:
        assert item.title in text
        assert f'href="{item.path}' in page.text or item.path in page.text
    assert "已记" not in text

    wang = next(i for i in items if i.name == "王姐")
    assert tap(client, wang.path, "warm").status_code == 303
    page = client.get(path)
    assert page.status_code == 200
    recorded = re.findall(r"<em>(.*?)</em>", page.text)
    assert [unescape(r) for r in recorded] == ["已记:回复了(热情)"]
    # The mark sits on 王姐's row.
    row = next(li for li in re.findall(r"<li>(.*?)</li>", page.text, re.S) if "王姐" in li)
    assert "已记" in row


def test_a_tampered_or_expired_list_link_is_refused(
    client: TestClient, items: list[Item], engine: Engine, demo_shop: Shop, clock: FixedClock,
    settings: Settings,
) -> None:  # fmt: skip
    path = list_path(engine, demo_shop.id or 0)
    body, mac = path.removeprefix("/d/").split(".")
    assert client.get(f"/d/{flip(body, 3)}.{mac}").status_code == 403
    assert client.get(f"/d/{body}.{flip(mac, 3)}").status_code == 403
    # Another shop's staff under this shop's id.
    other = make_shop(engine, clock, slug="other2", name="另一家")
    with read_session(engine) as session:
        stranger = owner_of(session=session, shop=other)
    token = list_token(
        link_secret(settings),
        shop_id=demo_shop.id or 0,
        staff_id=stranger.id or 0,
        day=TEST_TODAY,
        now=clock.now(),
        ttl=timedelta(hours=1),
    )
    assert client.get(f"/d/{token}").status_code == 403
    clock.advance(hours=settings.link_ttl_hours, seconds=1)
    expired = client.get(path)
    assert expired.status_code == 403 and "过期" in page_text(expired)


# --- escaping ----------------------------------------------------------------------------------


def test_a_customer_named_like_markup_is_shown_escaped(
    client: TestClient, engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop
) -> None:
    assert demo_shop.id is not None
    with write_session(engine) as session:
        wang = session.exec(
            select(Customer).where(Customer.shop_id == demo_shop.id, Customer.name == "王姐")
        ).one()
        wang.name = XSS_NAME
        session.add(wang)
    build_digest_for(engine, demo_shop.id, settings, clock)
    item = next(i for i in delivered_items(engine, demo_shop.id) if i.name == XSS_NAME)

    page = client.get(item.path)
    assert page.status_code == 200
    assert XSS_NAME not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert by_testid(page, "customer-name") == [XSS_NAME]  # shown literally, once decoded
    assert page.text.count("<script") == 1  # only the page's own tap.js
    assert '<script src="/static/tap.js"></script>' in page.text

    # The confirmation carries the name through the redirect: still escaped.
    response = tap(client, item.path, "sent")
    assert response.status_code == 303
    confirmed = client.get(response.headers["location"])
    assert XSS_NAME not in confirmed.text
    assert XSS_NAME in by_testid(confirmed, "flash")[0]

    listing = client.get(list_path(engine, demo_shop.id))
    assert listing.status_code == 200
    assert XSS_NAME not in listing.text and "&lt;script&gt;" in listing.text


def test_a_crafted_confirmation_in_the_url_is_ignored(
    client: TestClient, items: list[Item]
) -> None:
    item = first_of_tier(items, 1)
    page = client.get(item.path, params={"done": "已记:王姐 已挽回 ✓ <img src=x onerror=alert(1)>"})
    assert page.status_code == 200
    assert by_testid(page, "flash") == []
    assert "img" not in page.text and "已挽回" not in page.text
    # After a real tap the banner says what is on record, whatever the URL says.
    assert tap(client, item.path, "sent").status_code == 303
    page = client.get(item.path, params={"done": "已记:王姐 已挽回 ✓"})
    (flash,) = by_testid(page, "flash")
    assert "已发消息" in flash and "已挽回" not in flash


def test_a_call_or_visit_records_what_the_offer_cost(
    client: TestClient, items: list[Item], engine: Engine
) -> None:
    item = first_of_tier(items, 2)
    page = client.get(item.path)
    assert page.text.count('data-testid="cost"') == 1  # the box for what an offer cost
    response = client.post(
        item.path, data={"choice": "called", "cost": "12.5"}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    followup = get_followup(engine, item.followup_id)
    assert (followup.outcome, followup.cost_cents) == ("called", 1250)
    (flash,) = by_testid(client.get(item.path), "flash")
    assert "优惠花费12.50元" in flash


@pytest.mark.parametrize("cost", ["abc", "-5", "1e3", "２０", "20.555", "100001", "1,000"])
def test_a_cost_that_is_not_a_plain_amount_is_refused_and_nothing_is_recorded(
    client: TestClient, items: list[Item], engine: Engine, cost: str
) -> None:
    item = first_of_tier(items, 2)
    response = client.post(item.path, data={"choice": "called", "cost": cost})
    assert response.status_code == 400
    assert "优惠花费" in response.text
    followup = get_followup(engine, item.followup_id)
    assert (followup.outcome, followup.cost_cents) == (None, 0)
    # The link is still good for a proper tap.
    assert tap(client, item.path, "called").status_code == 303


def test_a_message_item_has_no_cost_box_and_refuses_a_cost(
    client: TestClient, items: list[Item], engine: Engine
) -> None:
    item = first_of_tier(items, 1)
    assert 'data-testid="cost"' not in client.get(item.path).text
    response = client.post(item.path, data={"choice": "sent", "cost": "20"})
    assert response.status_code == 400
    assert get_followup(engine, item.followup_id).outcome is None


# --- a link whose follow-up moved on -----------------------------------------------------------


def test_a_link_to_a_superseded_follow_up_says_so_and_records_nothing(
    client: TestClient, items: list[Item], engine: Engine, settings: Settings, clock: FixedClock,
    demo_shop: Shop,
) -> None:  # fmt: skip
    """Nobody tapped yesterday's message item; today the ladder moved the customer on to a
    call, closing the old follow-up without an outcome. Its (unexpired) link must not claim
    "已记录" nor record anything on it."""
    assert demo_shop.id is not None
    for days in (1, 2):
        clock.advance(days=1)
        result = run_digest(
            engine=engine,
            shop_id=demo_shop.id,
            day=TEST_TODAY + timedelta(days=days),
            settings=settings,
            clock=clock,
            pushers=[OutboxPusher(engine=engine, clock=clock)],
        )
        assert result.status == "sent"
    superseded = [
        i
        for i in items
        if (f := get_followup(engine, i.followup_id)).status == "closed" and f.outcome is None
    ]
    assert superseded, "the demo shop no longer moves anyone on within two days"
    for item in superseded:
        page = client.get(item.path)
        assert page.status_code == 410, page.text
        assert "已记录" not in page_text(page)
        assert "换成新的一步" in " ".join(by_testid(page, "error"))
        assert_refused(client, item.path, engine, 410, "换成新的一步")
