"""The owner lives in WeCom: binds once, gets the morning digest there, answers by number and
asks for a card, with WeCom's side played for real (signed, AES-encrypted callbacks in,
the digest pushed to a fake of WeCom's API on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from app.clock import FixedClock
from app.config import Settings
from app.db import write_session
from app.shops.models import Shop
from app.shops.service import issue_binding_code
from tests.channels.conftest import CORP_ID
from tests.channels.fake_provider import FakeProvider, start
from tests.channels.wire import WeComSide, event_xml, field_of, new_aes_key, text_xml
from tests.factories import add_orders, make_customer, make_shop
from tests.scenarios.harness import Seen, ShopLife

OWNER = "LaoBan"


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    server = start(fake)
    yield fake
    server.shutdown()
    server.server_close()


class WeComOwner:
    """The owner's WeCom: each message a signed, encrypted callback; the passive reply read."""

    def __init__(self, life: ShopLife, side: WeComSide) -> None:
        self.life, self.side = life, side
        self.msg_id = 7_000_000

    def contact(self, change: str, external: str) -> None:
        """WeCom reports a change to one of the owner's customer contacts."""
        now = int(self.life.clock.now().timestamp())
        xml = event_xml(
            to=CORP_ID, sender="sys", created=now, event="change_external_contact",
            fields={"ChangeType": change, "UserID": OWNER, "ExternalUserID": external},
        )  # fmt: skip
        request = self.side.callback(now, xml)
        response = self.life.client.post("/wecom", params=request.params, content=request.body)
        assert response.status_code == 200, response.text

    def says(self, text: str) -> Seen:
        self.msg_id += 1
        now = int(self.life.clock.now().timestamp())
        request = self.side.callback(
            now, text_xml(to=CORP_ID, sender=OWNER, content=text, created=now, msg_id=self.msg_id)
        )
        response = self.life.client.post("/wecom", params=request.params, content=request.body)
        step = f"[{self.life._now}] owner in WeCom says {text!r}"
        assert response.status_code == 200 and response.text, f"{step}: {response.text}"
        return Seen(field_of(self.side.open_reply(response.text), "Content"), step)


def test_the_owner_works_from_wecom(
    engine: Engine, settings: Settings, clock: FixedClock, provider: FakeProvider
) -> None:
    side = WeComSide(token="wecomToken123", aes_key=new_aes_key(), corp_id=CORP_ID)
    wecom = settings.model_copy(
        update={
            "wecom_corp_id": CORP_ID, "wecom_agent_id": "1000002",
            "wecom_secret": "wecom-secret", "wecom_token": side.token,
            "wecom_aes_key": side.aes_key, "wecom_api_base": provider.url,
        }
    )  # fmt: skip
    shop = make_shop(engine, clock, slug="wx", name="企微水站")
    for name, every in (("苗姐", 12), ("柏叔", 10), ("葛老师", 9)):
        phone = "13700009999" if name == "葛老师" else None
        customer = make_customer(engine, clock, shop, name, phone=phone)
        days = [date(2026, 5, 26) - timedelta(days=every * n) for n in range(8, -1, -1)]
        add_orders(engine, clock, shop, customer, days)
    life = ShopLife(engine=engine, settings=wecom, clock=clock, slug="wx")
    owner = WeComOwner(life, side)
    with write_session(engine) as session:
        code = issue_binding_code(
            session=session,
            shop=session.execute(select(Shop).where(col(Shop.slug) == "wx")).scalar_one(),
            clock=clock,
        )
    owner.says(f"绑定 {code}").shows("企微水站")
    # The morning digest reaches WeCom (the fake API), not only the local inbox.
    life.on("6/18", 8).morning()
    pushed = "\n".join(
        str(call.json) for call in provider.calls("/cgi-bin/message/send")
        if call.json.get("touser") == OWNER
    )  # fmt: skip
    assert "苗姐" in pushed and "柏叔" in pushed, pushed
    items = {str(i["title"]).split(" ")[0]: i["number"] for i in life.digest_items()}
    life.on("6/18", 9)
    owner.says(f"{items['苗姐']} 已发").shows("已记:苗姐 已发消息")
    owner.says("柏叔").shows("📇 柏叔")
    # What was answered in WeCom is what the web chat and the next morning see.
    life.on("6/19", 8).morning()
    life.on("6/19", 9).says("苗姐").shows("6月18日 微信:已发")
    # (issue 17) the owner adds 葛老师 in WeCom: the contact is read and linked by her
    # mobile, so when she deletes the owner later, the signal fires on her.
    provider.add_contact("wmGE", "葛老师的微信", userid=OWNER, mobiles=("13700009999",))
    owner.contact("add_external_contact", "wmGE")
    assert any("葛老师" in text for text in provider.sent_texts(OWNER)), provider.sent_texts(OWNER)
    life.on("6/19", 18)
    owner.contact("del_follow_user", "wmGE")
    life.says("今天该跟进谁").shows("🔴葛老师 删了好友")
