"""Pushes against a fake provider on loopback: tokens, messages, cards, fallback to SMS."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.channels.models import AccessToken
from app.channels.push import PushButton, PushItem, PushMessage, PushUnavailable
from app.channels.pushers import pushers_from_settings
from app.channels.tokens import TokenStore
from app.channels.wechat import OfficialAccountPusher
from app.channels.wecom import WeComPusher
from app.clock import FixedClock
from app.config import Settings
from app.db import read_session, write_session
from app.shops.models import Shop, Staff, StaffIdentity
from app.shops.service import owner_of
from tests.channels.fake_provider import FakeProvider


@pytest.fixture
def owner_id(engine: Engine, clock: FixedClock, demo_shop: Shop) -> int:
    """The demo owner, bound on WeCom and the Official Account, with a phone."""
    with write_session(engine) as session:
        owner = owner_of(session=session, shop=demo_shop)
        owner.phone = "138 0013 8000"
        session.add(owner)
        assert owner.id is not None and demo_shop.id is not None
        for channel, external in (("wecom", "LaoBan"), ("wechat", "oOwner")):
            session.add(StaffIdentity(shop_id=demo_shop.id, staff_id=owner.id, channel=channel,
                                      external_id=external, created_at=clock.now()))  # fmt: skip
        return owner.id


@pytest.fixture
def pushers(
    channel_settings: Settings, engine: Engine, clock: FixedClock
) -> Iterator[list[object]]:
    http = httpx.Client(timeout=5.0)
    yield list(
        pushers_from_settings(
            channel_settings, engine, clock=clock, http=http, backoff_seconds=0.01
        )
    )
    http.close()


def digest(shop_id: int, staff_id: int, key: str = "digest:2026-06-17:1") -> PushMessage:
    item = PushItem(
        followup_id=41, number=1, title="王姐 · 🟡 该发消息了", description="38天没订,平时25天一次",
        url="https://huitou.example/t/abc",
        buttons=(PushButton("fu:41:sent", "已发消息"), PushButton("fu:41:none", "没回")),
    )  # fmt: skip
    return PushMessage(key=key, shop_id=shop_id, staff_id=staff_id, title="今天该跟进 1 位",
                       text="1. 王姐 38天没订", items=(item,))  # fmt: skip


def test_factory_returns_configured_channels_in_preference_order(
    pushers: list[object], settings: Settings, engine: Engine
) -> None:
    assert [p.name for p in pushers] == ["wecom", "wechat", "sms"]  # type: ignore[attr-defined]
    assert pushers_from_settings(settings, engine) == []


def test_wecom_push_sends_markdown_and_a_button_card_once_per_token(
    pushers: list[object], provider: FakeProvider, demo_shop: Shop, owner_id: int, engine: Engine
) -> None:
    wecom = pushers[0]
    assert isinstance(wecom, WeComPusher)
    assert demo_shop.id is not None
    assert wecom.can_reach(shop_id=demo_shop.id, staff_id=owner_id)
    receipt = wecom.push(digest(demo_shop.id, owner_id))
    assert receipt.accepted and receipt.channel == "wecom"
    assert len(provider.calls("/cgi-bin/gettoken")) == 1
    token_call = provider.calls("/cgi-bin/gettoken")[0]
    assert token_call.query == {"corpid": "ww0123456789abcdef", "corpsecret": "wecom-secret"}
    sends = [c.json for c in provider.calls("/cgi-bin/message/send")]
    assert [s["msgtype"] for s in sends] == ["markdown", "template_card"]
    assert all(s["touser"] == "LaoBan" and s["agentid"] == 1000002 for s in sends)
    assert all(s["enable_duplicate_check"] == 1 for s in sends)
    card = sends[1]["template_card"]
    assert card["card_type"] == "button_interaction"
    assert [b["key"] for b in card["button_list"]] == ["fu:41:sent", "fu:41:none"]
    assert card["main_title"]["title"].startswith("王姐")
    assert card["card_action"] == {"type": 1, "url": "https://huitou.example/t/abc"}
    # Chinese goes over the wire as UTF-8, not \\u escapes.
    assert "王姐".encode() in provider.calls("/cgi-bin/message/send")[1].raw
    # A retry of the same push sends the same card (same task id): WeCom drops the duplicate.
    wecom.push(digest(demo_shop.id, owner_id))
    again = provider.calls("/cgi-bin/message/send")[3].json["template_card"]
    assert again["task_id"] == card["task_id"]
    assert len(provider.calls("/cgi-bin/gettoken")) == 1  # the stored token was reused
    with read_session(engine) as session:
        stored = session.get(AccessToken, "wecom:ww0123456789abcdef:1000002")
    assert stored is not None and stored.token == "tok-1"


def test_first_claims_of_a_token_at_once_fetch_it_once_and_all_get_it(
    engine: Engine, clock: FixedClock
) -> None:
    """Pushes racing for an app's very first token (no row yet): one gettoken, one token.

    On PostgreSQL the claimers used to find no row to lock, all inserted it, and all but
    one died on the primary key; SQLite's BEGIN IMMEDIATE hid it.
    """
    for round_ in range(6):
        fetched: list[int] = []
        gate = threading.Barrier(8)

        def fetch(
            _http: httpx.Client, _force: bool, round_: int = round_, fetched: list[int] = fetched
        ) -> tuple[str, int]:
            fetched.append(1)
            time.sleep(0.05)
            return f"tok-{round_}", 7200

        store = TokenStore(engine=engine, clock=clock, app_key=f"wecom:race:{round_}",
                           fetch=fetch, http=httpx.Client(), wait_step_seconds=0.01)  # fmt: skip

        def first_get(_: int, store: TokenStore = store, gate: threading.Barrier = gate) -> str:
            gate.wait(timeout=10)
            return store.get()

        with ThreadPoolExecutor(max_workers=8) as pool:
            tokens = list(pool.map(first_get, range(8)))
        assert tokens == [f"tok-{round_}"] * 8
        assert len(fetched) == 1


def test_expired_token_is_refreshed_and_the_send_retried(
    pushers: list[object], provider: FakeProvider, demo_shop: Shop, owner_id: int
) -> None:
    wecom = pushers[0]
    assert isinstance(wecom, WeComPusher) and demo_shop.id is not None
    wecom.push(digest(demo_shop.id, owner_id))
    provider.expire_token()  # the next send gets 42001
    wecom.push(digest(demo_shop.id, owner_id, key="digest:2026-06-18:1"))
    assert len(provider.calls("/cgi-bin/gettoken")) == 2
    tokens = [c.query["access_token"] for c in provider.calls("/cgi-bin/message/send")]
    assert tokens == ["tok-1", "tok-1", "tok-1", "tok-2", "tok-2"]


def test_token_near_expiry_is_refreshed_before_use(
    pushers: list[object], provider: FakeProvider, demo_shop: Shop, owner_id: int,
    clock: FixedClock,
) -> None:  # fmt: skip
    wecom = pushers[0]
    assert isinstance(wecom, WeComPusher) and demo_shop.id is not None
    wecom.push(digest(demo_shop.id, owner_id))
    clock.advance(seconds=7200 - 60)
    provider.expire_token()
    wecom.push(digest(demo_shop.id, owner_id, key="k2"))
    assert len(provider.calls("/cgi-bin/gettoken")) == 2
    assert not [c for c in provider.received if c.raw and b"42001" in c.raw]


def test_server_errors_are_retried_with_backoff(
    pushers: list[object], provider: FakeProvider, demo_shop: Shop, owner_id: int
) -> None:
    wecom = pushers[0]
    assert isinstance(wecom, WeComPusher) and demo_shop.id is not None
    provider.script("/cgi-bin/message/send", (502, {}), (503, {}))
    assert wecom.push(digest(demo_shop.id, owner_id)).accepted
    assert len(provider.calls("/cgi-bin/message/send")) == 4  # 2 failures + markdown + card


def test_official_account_push_sends_text_and_msgmenu(
    pushers: list[object], provider: FakeProvider, demo_shop: Shop, owner_id: int
) -> None:
    oa = pushers[1]
    assert isinstance(oa, OfficialAccountPusher) and demo_shop.id is not None
    oa.push(digest(demo_shop.id, owner_id))
    token = provider.calls("/cgi-bin/stable_token")[0].json
    assert token == {"grant_type": "client_credential", "appid": "wx0123456789abcdef",
                     "secret": "oa-secret", "force_refresh": False}  # fmt: skip
    text, menu = (c.json for c in provider.calls("/cgi-bin/message/custom/send"))
    assert text["touser"] == "oOwner" and text["msgtype"] == "text"
    assert menu["msgtype"] == "msgmenu"
    assert menu["msgmenu"]["list"] == [
        {"id": "fu:41:sent", "content": "已发消息"},
        {"id": "fu:41:none", "content": "没回"},
    ]


def test_outside_the_48_hour_window_the_digest_falls_back_to_sms(
    channel_settings: Settings, engine: Engine, clock: FixedClock, provider: FakeProvider,
    demo_shop: Shop, owner_id: int,
) -> None:  # fmt: skip
    settings = channel_settings.model_copy(update={"wecom_secret": ""})  # WeCom cannot push
    http = httpx.Client(timeout=5.0)
    chain = pushers_from_settings(settings, engine, clock=clock, http=http, backoff_seconds=0.01)
    assert [p.name for p in chain] == ["wechat", "sms"]
    provider.script("/cgi-bin/message/custom/send",
                    (200, {"errcode": 45015, "errmsg": "response out of time limit"}))  # fmt: skip
    message = digest(demo_shop.id or 0, owner_id)
    used = None
    for pusher in chain:
        if not pusher.can_reach(shop_id=message.shop_id, staff_id=message.staff_id):
            continue
        try:
            receipt = pusher.push(message)
        except PushUnavailable:
            continue
        used = receipt.channel
        break
    http.close()
    assert used == "sms"
    (sms_call,) = provider.calls("/")
    body = sms_call.json
    assert body["PhoneNumberSet"] == ["+8613800138000"]
    assert body["TemplateId"] == "100001" and body["TemplateParamSet"] == ["1"]
    assert body["SignName"] == "清泉送水" and body["SmsSdkAppId"] == "1400000001"
    assert sms_call.headers["x-tc-action"] == "SendSms"
    assert sms_call.headers["authorization"].startswith("TC3-HMAC-SHA256 Credential=AKIDtest/")


def test_unbound_staff_cannot_be_reached(
    pushers: list[object], engine: Engine, demo_shop: Shop, clock: FixedClock
) -> None:
    with write_session(engine) as session:
        helper = Staff(shop_id=demo_shop.id or 0, name="小张", role="staff", created_at=clock.now())
        session.add(helper)
        session.flush()
        helper_id = helper.id or 0
    for pusher in pushers:
        assert not pusher.can_reach(shop_id=demo_shop.id or 0, staff_id=helper_id)  # type: ignore[attr-defined]
    with pytest.raises(PushUnavailable):
        pushers[0].push(digest(demo_shop.id or 0, helper_id))  # type: ignore[attr-defined]
    with read_session(engine) as session:
        assert session.exec(select(AccessToken)).all() == []
