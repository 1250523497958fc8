"""Tenants: as shop A's owner, try to read or change shop B through every way in; all refused.

Shop B is the demo water station (王姐 and 300 others, with today's digest built); shop A is a
small station of its own. Every route the app serves must have a case in ROUTE_CASES (a
new route without one fails `test_every_route_has_a_tenant_case`).

The local web chat and the web import (/, /chat, /api/chat, /import) act as the owner of
whichever shop the URL names without a login: they are a loopback convenience, not a tenant
boundary, and are switched off with HUITOU_WEBCHAT_ENABLED=false for any public deployment.
What is tested for them: off means 404 on every one of them, a client message id never
crosses shops, and an import confirmation token only confirms in the shop it was issued for.
"""

from __future__ import annotations

import csv
import importlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import routing
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, inspect, text
from sqlmodel import col, select
from typer.testing import CliRunner

from app.cli import cli
from app.clock import FixedClock
from app.config import Settings
from app.customers.models import Customer
from app.db import read_session, write_session
from app.digest.models import DigestDelivery
from app.main import create_app
from app.outreach.links import link_secret, list_token
from app.outreach.models import FollowUp
from app.outreach.outcomes import TapError, record_tap
from app.shops.models import Shop, Staff
from app.shops.service import get_shop, issue_binding_code, owner_of
from tests.channels.conftest import now_ts
from tests.channels.test_taps import card_event
from tests.channels.test_wechat_callback import say as oa_say
from tests.channels.test_wecom_callback import bind
from tests.channels.test_wecom_callback import send as wecom_send
from tests.channels.wire import OfficialAccountSide, WeComSide, field_of
from tests.conftest import TEST_TODAY, ChatDriver
from tests.factories import LOCAL, add_orders, make_customer, make_shop
from tests.web.test_tap_links import build_digest_for, delivered_items

runner = CliRunner()
THIS = "tests/hardening/test_tenants.py"
SIGNIN = "tests/web/test_signin.py"

# Every (method, path) the app serves -> the tests that try it across shops ("module::test";
# a bare name is a test in this module). Framework pages carry no shop data at all.
ROUTE_CASES: dict[tuple[str, str], list[str]] = {
    ("GET", "/openapi.json"): ["test_framework_and_health_routes_carry_no_shop_data"],
    ("GET", "/docs"): ["test_framework_and_health_routes_carry_no_shop_data"],
    ("GET", "/docs/oauth2-redirect"): ["test_framework_and_health_routes_carry_no_shop_data"],
    ("GET", "/redoc"): ["test_framework_and_health_routes_carry_no_shop_data"],
    ("GET", "/healthz"): ["test_framework_and_health_routes_carry_no_shop_data"],
    ("MOUNT", "/static"): ["test_static_files_serve_no_data_and_no_traversal"],
    ("GET", "/"): ["test_webchat_routes_are_all_off_when_webchat_is_disabled"],
    ("GET", "/chat/{slug}"): [
        "test_webchat_routes_are_all_off_when_webchat_is_disabled",
        f"{SIGNIN}::test_a_signed_in_browser_cannot_reach_another_shop",
    ],
    ("POST", "/api/chat/{slug}"): [
        "test_webchat_routes_are_all_off_when_webchat_is_disabled",
        "test_web_chat_message_ids_never_cross_shops",
        f"{SIGNIN}::test_a_signed_in_browser_cannot_reach_another_shop",
    ],
    ("GET", "/import/{slug}"): [
        "test_webchat_routes_are_all_off_when_webchat_is_disabled",
        f"{SIGNIN}::test_a_signed_in_browser_cannot_reach_another_shop",
    ],
    ("POST", "/import/{slug}"): [
        "test_webchat_routes_are_all_off_when_webchat_is_disabled",
        f"{SIGNIN}::test_a_signed_in_browser_cannot_reach_another_shop",
    ],
    ("POST", "/import/{slug}/confirm"): [
        "test_webchat_routes_are_all_off_when_webchat_is_disabled",
        "test_an_import_token_from_shop_a_does_not_confirm_in_shop_b",
    ],
    ("GET", "/wecom"): ["test_channel_verification_answers_reveal_no_shop_data"],
    ("POST", "/wecom"): [
        "test_wecom_commands_as_a_do_not_reach_b",
        "test_wecom_card_tap_on_bs_follow_up_is_refused",
    ],
    ("GET", "/wechat"): ["test_channel_verification_answers_reveal_no_shop_data"],
    ("POST", "/wechat"): ["test_official_account_commands_and_menu_taps_as_a_do_not_reach_b"],
    ("POST", "/sms/reply/{token}"): ["test_sms_reply_callback_answers_nothing_about_any_shop"],
    ("GET", "/t/{token}"): [
        "tests/web/test_tap_links.py::test_a_link_for_another_shops_item_is_refused",
        "test_item_links_crossed_between_shops_are_refused",
    ],
    ("POST", "/t/{token}"): [
        "tests/web/test_tap_links.py::test_a_link_for_another_shops_item_is_refused",
        "test_item_links_crossed_between_shops_are_refused",
    ],
    ("GET", "/d/{token}"): ["test_list_links_crossed_between_shops_are_refused"],
    ("GET", "/r/{token}"): ["test_a_report_link_shows_only_its_own_shop"],
    ("GET", "/login/{token}"): [
        f"{SIGNIN}::test_a_link_naming_a_person_of_another_shop_signs_nobody_in",
        f"{SIGNIN}::test_forged_or_damaged_sign_in_links_are_refused",
    ],
    ("POST", "/login/{token}"): [
        f"{SIGNIN}::test_a_signed_in_browser_cannot_reach_another_shop",
        f"{SIGNIN}::test_a_link_naming_a_person_of_another_shop_signs_nobody_in",
    ],
}


# --- the two shops -----------------------------------------------------------------------


def shop_rows(engine: Engine, shop_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table that belongs to one shop (for 'nothing of B changed')."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            columns = {c["name"] for c in inspect(conn).get_columns(table)}
            if "shop_id" not in columns:
                continue
            rows = conn.execute(text(f'SELECT * FROM "{table}" WHERE shop_id = :s'), {"s": shop_id})
            out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out


class World:
    """Shop A (small, with its own digest) and shop B (the demo shop, with today's digest)."""

    def __init__(self, engine: Engine, settings: Settings, clock: FixedClock, b: Shop):
        self.engine, self.settings, self.clock, self.b = engine, settings, clock, b
        self.a = make_shop(engine, clock, slug="shop-a", name="阿明水站")
        assert self.a.id is not None and b.id is not None
        self.a_id, self.b_id = self.a.id, b.id
        days = [TEST_TODAY - timedelta(days=d) for d in (100, 80, 60, 40)]
        for name, phone in (("李大爷", "13600001111"), ("周阿姨", "13600002222")):
            customer = make_customer(engine, clock, self.a, name, phone=phone)
            add_orders(engine, clock, self.a, customer, days)
        build_digest_for(engine, self.b_id, settings, clock)
        build_digest_for(engine, self.a_id, settings, clock)
        with read_session(engine) as session:
            self.b_wang = session.exec(
                select(Customer).where(Customer.shop_id == self.b_id, Customer.name == "王姐")
            ).one()
            self.b_names = set(
                session.exec(select(Customer.name).where(Customer.shop_id == self.b_id)).all()
            )
            self.a_names = set(
                session.exec(select(Customer.name).where(Customer.shop_id == self.a_id)).all()
            )
        assert self.b_wang.phone and self.b_wang.address
        assert not self.a_names & self.b_names
        self.b_items = delivered_items(engine, self.b_id)
        self.a_items = delivered_items(engine, self.a_id)
        self.before_b = shop_rows(engine, self.b_id)

    def b_unchanged(self) -> None:
        assert shop_rows(self.engine, self.b_id) == self.before_b

    def b_secrets(self) -> list[str]:
        """What about B's 王姐 only B's owner may read: phone digits, address, rhythm."""
        phone = self.b_wang.phone or ""
        return [phone[-4:], phone[:3] + "****", self.b_wang.address or "", "清泉", "平时25天"]

    def assert_no_b_data(self, reply: str, typed: str = "") -> None:
        """No data of B's in `reply`, once the owner's own words (echoed back) are removed."""
        for word in sorted(typed.split(), key=len, reverse=True):
            reply = reply.replace(word, "")
        for secret in self.b_secrets():
            assert secret not in reply, (secret, reply)
        # Names of B's customers other than the one the owner typed never show up.
        typed = {"王姐"}
        leaked = [n for n in self.b_names - typed if len(n) >= 2 and n in reply]
        assert not leaked, (leaked, reply)


@pytest.fixture
def world(engine: Engine, settings: Settings, clock: FixedClock, demo_shop: Shop) -> World:
    return World(engine, settings, clock, demo_shop)


@pytest.fixture
def a_chat(world: World) -> ChatDriver:
    return ChatDriver(engine=world.engine, settings=world.settings, clock=world.clock,
                      shop_ref="shop-a")  # fmt: skip


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings=world.settings, engine=world.engine, clock=world.clock),
        base_url=LOCAL,
    ) as c:
        yield c


@pytest.fixture
def channel_client(world: World, channel_settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings=channel_settings, engine=world.engine, clock=world.clock)
    with TestClient(app) as test_client:
        yield test_client
        for name in ("wecom_client", "wechat_client"):
            api = getattr(app.state, name, None)
            if api is not None:
                api.http.close()


@pytest.fixture
def a_code(world: World) -> str:
    with write_session(world.engine) as session:
        return issue_binding_code(session=session, shop=get_shop(session=session, ref="shop-a"),
                                  clock=world.clock)  # fmt: skip


# --- the route table -----------------------------------------------------------------------


def _served_routes() -> set[tuple[str, str]]:
    app = create_app(settings=Settings(scheduler_enabled=False, database_url="sqlite://"))
    served: set[tuple[str, str]] = set()
    for context in routing.iter_route_contexts(app.routes):
        methods = context.methods or {"MOUNT"}
        served |= {(m, context.path) for m in methods if m != "HEAD"}
    return served


def _resolve(case: str) -> Any:
    module_path, _, name = case.rpartition("::")
    if not module_path:
        return globals().get(name)
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    return getattr(module, name, None)


def test_every_route_has_a_tenant_case() -> None:
    served = _served_routes()
    missing = sorted(served - ROUTE_CASES.keys())
    assert not missing, f"routes without a tenant test, add them to ROUTE_CASES: {missing}"
    stale = sorted(ROUTE_CASES.keys() - served)
    assert not stale, f"ROUTE_CASES names routes the app no longer serves: {stale}"
    for route, cases in ROUTE_CASES.items():
        assert cases, route
        for case in cases:
            found = _resolve(case)
            assert callable(found) and found.__name__.startswith("test_"), (route, case)


# --- bot commands, numbered replies, undo --------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "王姐",
        f"尾号{'{phone4}'}",
        "王姐 回复了",
        "王姐 流失 价格",
        "王姐 暂停 到月底",
        "王姐 投诉 送水慢",
        "王姐 满意度 3",
        "王姐 已挽回",
        "今天该跟进谁",
        "本月统计",
    ],
)
def test_bot_commands_as_a_never_find_or_change_bs_customers(
    world: World, a_chat: ChatDriver, message: str
) -> None:
    phone4 = (world.b_wang.phone or "")[-4:]
    typed = message.replace("{phone4}", phone4)
    reply = a_chat.say(typed)
    world.assert_no_b_data(reply, typed)
    assert "📇 王姐" not in reply
    world.b_unchanged()


def test_an_order_for_bs_customer_asks_to_create_one_in_a(world: World, a_chat: ChatDriver) -> None:
    reply = a_chat.say("王姐 2桶")
    world.assert_no_b_data(reply)
    assert "新建" in reply  # not B's 王姐: an unknown name in shop A
    a_chat.say("0")
    world.b_unchanged()
    # Confirming creates a 王姐 of shop A's own; B's is untouched.
    a_chat.say("王姐 2桶")
    a_chat.say("1")
    world.b_unchanged()
    with read_session(world.engine) as session:
        mine = session.exec(
            select(Customer).where(Customer.shop_id == world.a_id, Customer.name == "王姐")
        ).one()
    assert mine.id != world.b_wang.id


def test_numbered_replies_as_a_touch_only_as_digest(world: World, a_chat: ChatDriver) -> None:
    reply = a_chat.say("1 已发")
    assert reply.startswith("已记:"), reply
    world.assert_no_b_data(reply)
    recorded = [i for i in world.a_items if _outcome(world.engine, i.followup_id) == "sent"]
    assert len(recorded) == 1 and recorded[0].name in world.a_names
    # A's owner cannot reach numbers beyond A's own list (B's list is longer).
    assert len(world.b_items) > len(world.a_items)
    beyond = a_chat.say(f"{len(world.a_items) + 1} 已发")
    world.assert_no_b_data(beyond)
    world.b_unchanged()


def test_undo_as_a_never_undoes_bs_last_change(world: World, a_chat: ChatDriver) -> None:
    b_chat = ChatDriver(engine=world.engine, settings=world.settings, clock=world.clock,
                        shop_ref="demo")  # fmt: skip
    assert b_chat.say("王姐 2桶").startswith("已记:王姐")
    b_after = shop_rows(world.engine, world.b_id)
    reply = a_chat.say("撤销")
    world.assert_no_b_data(reply)
    assert shop_rows(world.engine, world.b_id) == b_after


def _outcome(engine: Engine, followup_id: int) -> str | None:
    with read_session(engine) as session:
        followup = session.get(FollowUp, followup_id)
        assert followup is not None
        return followup.outcome


def test_record_tap_with_bs_follow_up_is_refused_for_every_role(world: World) -> None:
    foreign = world.b_items[0].followup_id
    with write_session(world.engine) as session:
        shop_a = session.get(Shop, world.a_id)
        assert shop_a is not None
        owner = owner_of(session=session, shop=shop_a)
        for outcome in ("sent", "none", "lost:price", "away:7", "recovered", "called"):
            with pytest.raises(TapError):
                record_tap(session=session, shop=shop_a, staff=owner, key=f"fu:{foreign}:{outcome}",
                           clock=world.clock, source="wecom")  # fmt: skip
        # Shop A's shop with B's own owner (a mixed-up session) is refused as well.
        shop_b = session.get(Shop, world.b_id)
        assert shop_b is not None
        b_owner = owner_of(session=session, shop=shop_b)
        with pytest.raises(TapError):
            record_tap(session=session, shop=shop_a, staff=b_owner,
                       key=f"fu:{foreign}:sent", clock=world.clock, source="wecom")  # fmt: skip
        with pytest.raises(TapError):
            record_tap(session=session, shop=shop_b, staff=owner,
                       key=f"fu:{foreign}:sent", clock=world.clock, source="wecom")  # fmt: skip
    world.b_unchanged()


# --- channels ---------------------------------------------------------------------------------


def test_wecom_commands_as_a_do_not_reach_b(
    world: World, channel_client: TestClient, wecom_side: WeComSide, a_code: str
) -> None:
    assert "绑好了" in bind(channel_client, wecom_side, world.clock, a_code)
    phone4 = (world.b_wang.phone or "")[-4:]
    for message in ("王姐", f"尾号{phone4}", "王姐 流失 价格", "今天该跟进谁", "1 已发"):
        status, reply = wecom_send(channel_client, wecom_side, world.clock, message)
        assert status == 200
        world.assert_no_b_data(reply, message)
    # Binding again with a code of B's is refused: one identity, one shop.
    with write_session(world.engine) as session:
        b_code = issue_binding_code(session=session, shop=get_shop(session=session, ref="demo"),
                                    clock=world.clock)  # fmt: skip
    world.before_b = shop_rows(world.engine, world.b_id)
    _, reply = wecom_send(channel_client, wecom_side, world.clock, f"绑定 {b_code}")
    assert "清泉" not in reply
    world.b_unchanged()


def test_wecom_card_tap_on_bs_follow_up_is_refused(
    world: World, channel_client: TestClient, wecom_side: WeComSide, a_code: str
) -> None:
    bind(channel_client, wecom_side, world.clock, a_code)
    world.before_b = shop_rows(world.engine, world.b_id)
    foreign = world.b_items[0].followup_id
    for i, outcome in enumerate(("sent", "lost:price", "none")):
        params, body = card_event(wecom_side, world.clock, f"fu:{foreign}:{outcome}", f"ht-x{i}")
        response = channel_client.post("/wecom", params=params, content=body)
        assert response.status_code == 200
        reply = field_of(wecom_side.open_reply(response.text), "Content")
        assert "找不到这条跟进" in reply
        world.assert_no_b_data(reply)
    assert _outcome(world.engine, foreign) is None
    world.b_unchanged()


def test_official_account_commands_and_menu_taps_as_a_do_not_reach_b(
    world: World, channel_client: TestClient, oa_side: OfficialAccountSide, a_code: str
) -> None:
    assert "绑好了" in oa_say(channel_client, oa_side, world.clock, f"绑定 {a_code}")
    world.before_b = shop_rows(world.engine, world.b_id)
    for message in ("王姐", "王姐 回复了", "今天该跟进谁"):
        world.assert_no_b_data(oa_say(channel_client, oa_side, world.clock, message), message)
    foreign = world.b_items[0].followup_id
    reply = oa_say(channel_client, oa_side, world.clock, "已发",
                   extra=f"<bizmsgmenuid>fu:{foreign}:sent</bizmsgmenuid>")  # fmt: skip
    assert "找不到这条跟进" in reply
    assert _outcome(world.engine, foreign) is None
    world.b_unchanged()


def test_channel_verification_answers_reveal_no_shop_data(
    world: World, channel_client: TestClient, wecom_side: WeComSide, oa_side: OfficialAccountSide
) -> None:
    ts = now_ts(world.clock)
    wecom = channel_client.get("/wecom", params=wecom_side.verification(ts, "echo-1"))
    oa = channel_client.get("/wechat", params=oa_side.verification(ts, "echo-2"))
    assert (wecom.status_code, wecom.text) == (200, "echo-1")
    assert (oa.status_code, oa.text) == (200, "echo-2")


def test_sms_reply_callback_answers_nothing_about_any_shop(
    world: World, channel_client: TestClient, channel_settings: Settings
) -> None:
    token = channel_settings.sms_callback_token
    body = [{"mobile": world.b_wang.phone, "text": "王姐"}, {"mobile": "13600001111", "text": "1"}]
    response = channel_client.post(f"/sms/reply/{token}", json=body)
    assert response.json() == {"result": 0, "errmsg": "OK"}
    assert channel_client.post("/sms/reply/wrong-token", json=body).status_code == 404
    world.b_unchanged()


# --- links --------------------------------------------------------------------------------------


def test_item_links_crossed_between_shops_are_refused(world: World, client: TestClient) -> None:
    """A's own item link works; splicing B's item into A's link, or A's into B's, does not."""
    own = world.a_items[0]
    assert client.get(own.path).status_code == 200
    from app.outreach.links import item_token

    secret, now = link_secret(world.settings), world.clock.now()
    ttl = timedelta(hours=1)
    for shop_id, followup_id in (
        (world.a_id, world.b_items[0].followup_id),
        (world.b_id, own.followup_id),
    ):
        token = item_token(secret, shop_id=shop_id, followup_id=followup_id, now=now, ttl=ttl)
        assert client.get(f"/t/{token}").status_code == 403
        posted = client.post(f"/t/{token}", data={"choice": "sent"}, follow_redirects=False)
        assert posted.status_code == 403
    assert _outcome(world.engine, world.b_items[0].followup_id) is None
    assert _outcome(world.engine, own.followup_id) is None
    world.b_unchanged()


def test_list_links_crossed_between_shops_are_refused(world: World, client: TestClient) -> None:
    with read_session(world.engine) as session:
        a_owner = session.exec(
            select(Staff).where(Staff.shop_id == world.a_id, Staff.role == "owner")
        ).one()
        b_owner = session.exec(
            select(Staff).where(Staff.shop_id == world.b_id, Staff.role == "owner")
        ).one()
        assert session.exec(
            select(DigestDelivery).where(col(DigestDelivery.staff_id) == b_owner.id)
        ).first()
    secret, now = link_secret(world.settings), world.clock.now()
    ttl = timedelta(hours=1)

    def token(shop_id: int, staff_id: int | None) -> str:
        assert staff_id is not None
        return list_token(secret, shop_id=shop_id, staff_id=staff_id, day=TEST_TODAY, now=now,
                          ttl=ttl)  # fmt: skip

    mine = client.get(f"/d/{token(world.a_id, a_owner.id)}")
    assert mine.status_code == 200 and ("李大爷" in mine.text or "周阿姨" in mine.text)
    for crossed in (token(world.a_id, b_owner.id), token(world.b_id, a_owner.id)):
        page = client.get(f"/d/{crossed}")
        assert page.status_code == 403
        world.assert_no_b_data(page.text)
        assert "王姐" not in page.text


def test_a_report_link_shows_only_its_own_shop(world: World, client: TestClient) -> None:
    """A report link names its shop inside the signed payload: re-pointing it at B breaks it."""
    import base64
    import json

    from app.outreach.links import report_token

    secret, now = link_secret(world.settings), world.clock.now()
    token = report_token(secret, shop_id=world.a_id, month=TEST_TODAY.replace(day=1), now=now,
                         ttl=timedelta(hours=1))  # fmt: skip
    page = client.get(f"/r/{token}")
    assert page.status_code == 200
    world.assert_no_b_data(page.text)
    body, mac = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["s"] = world.b_id
    forged = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":"),
                                                 sort_keys=True).encode()).rstrip(b"=")  # fmt: skip
    refused = client.get(f"/r/{forged.decode()}.{mac}")
    assert refused.status_code == 403
    assert "王姐" not in refused.text and "清泉" not in refused.text


# --- web chat and web import ---------------------------------------------------------------


def test_webchat_routes_are_all_off_when_webchat_is_disabled(world: World, tmp_path: Path) -> None:
    closed = world.settings.model_copy(update={"webchat_enabled": False})
    upload = tmp_path / "orders.csv"
    upload.write_text("客户,日期,数量\n王姐,2026-06-01,2\n", encoding="utf-8")
    with TestClient(
        create_app(settings=closed, engine=world.engine, clock=world.clock), base_url=LOCAL
    ) as c:
        for slug in ("shop-a", "demo"):
            assert c.get("/").status_code == 404
            assert c.get(f"/chat/{slug}").status_code == 404
            sent = c.post(f"/api/chat/{slug}", json={"text": "王姐", "client_msg_id": "abcdefgh1"})
            assert sent.status_code == 404 and "王姐" not in sent.text
            assert c.get(f"/import/{slug}").status_code == 404
            with upload.open("rb") as handle:
                posted = c.post(f"/import/{slug}", files={"file": ("orders.csv", handle)})
            assert posted.status_code == 404
            confirm = c.post(f"/import/{slug}/confirm", data={"token": "x" * 32})
            assert confirm.status_code == 404
    world.b_unchanged()


def test_web_chat_message_ids_never_cross_shops(world: World, client: TestClient) -> None:
    """The same client id sent to A and to B is two messages, each in its own shop."""
    body = {"text": "王姐", "client_msg_id": "same-id-0001"}
    a_reply = client.post("/api/chat/shop-a", json=body).json()
    b_reply = client.post("/api/chat/demo", json=body).json()
    assert not a_reply["duplicate"] and not b_reply["duplicate"]
    world.assert_no_b_data(" ".join(r["text"] for r in a_reply["replies"]))
    assert b_reply["replies"][0]["text"].startswith("📇 王姐")
    # And repeated to A, it is A's duplicate (answered from A's record, not B's).
    again = client.post("/api/chat/shop-a", json=body).json()
    assert again["duplicate"] and again["replies"] == a_reply["replies"]


def test_an_import_token_from_shop_a_does_not_confirm_in_shop_b(
    world: World, client: TestClient, tmp_path: Path
) -> None:
    upload = tmp_path / "orders.csv"
    upload.write_text("客户,电话,日期,数量\n新客户甲,13700001234,2026-06-01,2\n", encoding="utf-8")
    with upload.open("rb") as handle:
        page = client.post("/import/shop-a", files={"file": ("orders.csv", handle)})
    assert page.status_code == 200, page.text
    match = re.search(r'name="token" value="([^"]+)"', page.text)
    assert match is not None
    crossed = client.post("/import/demo/confirm", data={"token": match.group(1)})
    assert crossed.status_code == 410
    with read_session(world.engine) as session:
        assert not session.exec(select(Customer).where(Customer.name == "新客户甲")).all()
    world.b_unchanged()


# --- CLI: export and forget ------------------------------------------------------------------


def _exported_text(folder: Path) -> str:
    parts: list[str] = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as handle:
                parts += [",".join(row) for row in csv.reader(handle)]
        elif path.suffix == ".xlsx":
            workbook = load_workbook(path, read_only=True)
            for sheet in workbook.worksheets:
                for row in sheet.iter_rows(values_only=True):
                    parts.append(",".join("" if v is None else str(v) for v in row))
            workbook.close()
    return "\n".join(parts)


@pytest.mark.usefixtures("cli_env")
def test_export_of_shop_a_holds_no_data_of_shop_b(world: World, tmp_path: Path) -> None:
    out = tmp_path / "export-a"
    for extra in ([], ["--with-phones"]):
        result = runner.invoke(cli, ["export", "--shop", "shop-a", "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        exported = _exported_text(out)
        assert "李大爷" in exported and "周阿姨" in exported  # the export is not empty
        leaked = sorted(n for n in world.b_names if n in exported)
        assert not leaked, leaked
        assert (world.b_wang.phone or "") not in exported
        assert "清泉" not in exported
    world.b_unchanged()


@pytest.mark.usefixtures("cli_env")
def test_forget_in_shop_a_cannot_reach_bs_customer(world: World) -> None:
    wang = world.b_wang
    for ref in (str(wang.id), wang.name, wang.phone or ""):
        result = runner.invoke(cli, ["customer", "forget", "shop-a", ref, "--yes"])
        assert result.exit_code != 0 or "已删除" not in result.output, result.output
        assert wang.address not in result.output
    world.b_unchanged()
    with read_session(world.engine) as session:
        again = session.get(Customer, wang.id)
        assert again is not None and again.name == "王姐" and again.phone == wang.phone


# --- routes without shop data --------------------------------------------------------------


def test_framework_and_health_routes_carry_no_shop_data(world: World, client: TestClient) -> None:
    for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz"):
        response = client.get(path)
        assert response.status_code == 200, path
        for marker in ("王姐", "清泉", "阿明", "李大爷", world.b_wang.phone or "-"):
            assert marker not in response.text, (path, marker)


def test_static_files_serve_no_data_and_no_traversal(world: World, client: TestClient) -> None:
    listed = sorted(p.name for p in (Path("app/web/static")).iterdir())
    assert listed and client.get(f"/static/{listed[0]}").status_code == 200
    for probe in ("/static/../config.py", "/static/..%2f..%2fconfig.py", "/static/%2e%2e/views.py",
                  "/static/", "/static/../../data/huitou.db"):  # fmt: skip
        response = client.get(probe)
        assert response.status_code == 404, probe
        assert "Settings" not in response.text
