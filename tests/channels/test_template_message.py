"""Official Account template messages: when the 48-hour window is closed (45015), a verified
service account sends the digest as a template message (fields from config, a link to the
signed full list) before SMS; without a template id, or when it fails, SMS as before."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import Engine

from app.channels.push import PushButton, Pusher, PushItem, PushMessage, PushUnavailable
from app.channels.pushers import pushers_from_settings
from app.clock import FixedClock
from app.config import Settings
from app.db import write_session
from app.shops.models import Shop, StaffIdentity
from app.shops.service import owner_of
from tests.channels.fake_provider import FakeProvider

OPENID = "oOwner"
TEMPLATE = "/cgi-bin/message/template/send"
CUSTOM = "/cgi-bin/message/custom/send"
LIST_URL = "https://huitou.example/d/eyJwIjoibGlzdCJ9.c2lnbmF0dXJl"
CLOSED = (
    200,
    {"errcode": 45015, "errmsg": "response out of time limit or subscription is canceled"},
)


@pytest.fixture
def owner_id(engine: Engine, clock: FixedClock, demo_shop: Shop) -> int:
    """The demo owner: on the Official Account only, with a phone for the SMS fallback."""
    with write_session(engine) as session:
        owner = owner_of(session=session, shop=demo_shop)
        owner.phone = "13800138000"
        session.add(owner)
        assert owner.id is not None and demo_shop.id is not None
        session.add(StaffIdentity(shop_id=demo_shop.id, staff_id=owner.id, channel="wechat",
                                  external_id=OPENID, created_at=clock.now()))  # fmt: skip
        return owner.id


def chain_for(settings: Settings, engine: Engine, clock: FixedClock) -> Iterator[list[Pusher]]:
    http = httpx.Client(timeout=5.0)
    settings = settings.model_copy(update={"wecom_secret": ""})  # WeCom cannot push
    yield pushers_from_settings(settings, engine, clock=clock, http=http, backoff_seconds=0.01)
    http.close()


@pytest.fixture
def template_settings(channel_settings: Settings) -> Settings:
    return channel_settings.model_copy(update={"wechat_template_id": "TPL-digest-001"})


def digest(shop_id: int, staff_id: int) -> PushMessage:
    items = tuple(
        PushItem(
            followup_id=40 + n,
            number=n,
            title=f"{name} · 🟡 该发消息了",
            description="38天没订",
            url=f"https://huitou.example/t/item{n}",
            buttons=(PushButton(f"fu:{40 + n}:sent", "已发消息"),),
        )
        for n, name in enumerate(("王姐", "老李"), start=1)
    )
    return PushMessage(key="digest:2026-06-17:1", shop_id=shop_id, staff_id=staff_id,
                       title="今天该跟进 2 位",
                       text=f"1. 王姐 38天没订\n2. 老李\n完整名单和话术:{LIST_URL}",
                       items=items)  # fmt: skip


def push_through(chain: list[Pusher], message: PushMessage) -> str | None:
    """What the digest sender does: the first channel that takes it."""
    for pusher in chain:
        if not pusher.can_reach(shop_id=message.shop_id, staff_id=message.staff_id):
            continue
        try:
            return pusher.push(message).channel
        except PushUnavailable:
            continue
    return None


def test_closed_window_sends_a_template_message_before_sms(
    template_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    owner_id: int, provider: FakeProvider,
) -> None:  # fmt: skip
    provider.script(CUSTOM, CLOSED)
    for chain in chain_for(template_settings, engine, clock):
        assert [p.name for p in chain] == ["wechat", "sms"]
        assert push_through(chain, digest(demo_shop.id or 0, owner_id)) == "wechat"
    (sent,) = provider.calls(TEMPLATE)
    assert sent.query["access_token"] == provider.token
    assert sent.json == {
        "touser": OPENID,
        "template_id": "TPL-digest-001",
        "url": LIST_URL,
        "data": {
            "first": {"value": "今天该跟进 2 位"},
            "keyword1": {"value": "王姐、老李"},
            "keyword2": {"value": "6月17日"},
            "remark": {"value": "点开看完整名单和话术,点一下就能记结果"},
        },
    }
    assert provider.calls("/") == []  # no SMS
    assert len(provider.calls(CUSTOM)) == 1  # no menus after the closed window


def test_the_field_mapping_is_configurable_and_thing_values_are_cut_to_20(
    template_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    owner_id: int, provider: FakeProvider,
) -> None:  # fmt: skip
    settings = template_settings.model_copy(
        update={
            "wechat_template_fields": "thing1=shop,time2=date,thing3=title,character_string4=count"
        }
    )
    provider.script(CUSTOM, CLOSED)
    message = digest(demo_shop.id or 0, owner_id)
    long_text = replace(message, title="今天该跟进 2 位:" + "很长的说明" * 6)
    for chain in chain_for(settings, engine, clock):
        assert push_through(chain, long_text) == "wechat"
    data = provider.calls(TEMPLATE)[0].json["data"]
    assert data["thing1"] == {"value": demo_shop.name[:20]}
    assert data["time2"] == {"value": "6月17日"}
    assert len(data["thing3"]["value"]) == 20 and data["thing3"]["value"].endswith("…")
    assert data["character_string4"] == {"value": "2"}


def test_without_a_template_id_the_closed_window_falls_back_to_sms(
    channel_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    owner_id: int, provider: FakeProvider,
) -> None:  # fmt: skip
    provider.script(CUSTOM, CLOSED)
    for chain in chain_for(channel_settings, engine, clock):
        assert push_through(chain, digest(demo_shop.id or 0, owner_id)) == "sms"
    assert provider.calls(TEMPLATE) == []
    (sms,) = provider.calls("/")
    assert sms.json["TemplateParamSet"] == ["2"]


def test_a_template_message_the_user_cannot_get_falls_back_to_sms(
    template_settings: Settings, engine: Engine, clock: FixedClock, demo_shop: Shop,
    owner_id: int, provider: FakeProvider,
) -> None:  # fmt: skip
    provider.script(CUSTOM, CLOSED)
    provider.script(TEMPLATE, (200, {"errcode": 43004, "errmsg": "require subscribe"}))
    for chain in chain_for(template_settings, engine, clock):
        assert push_through(chain, digest(demo_shop.id or 0, owner_id)) == "sms"
    assert len(provider.calls(TEMPLATE)) == 1 and len(provider.calls("/")) == 1
