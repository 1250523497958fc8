"""WeCom customer contacts linked to the shop's customers, from signed and encrypted callbacks
against the fake WeCom API, and their later deletion flagging the right customer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

from app.channels.contacts import Contact, CustomerRow, find_customers, mobile
from app.cli import cli
from app.clock import FixedClock
from app.config import Settings, get_settings
from app.customers.models import Customer
from app.db import read_session, write_session
from app.events.models import Event
from app.shops.models import Shop, StaffIdentity
from tests.channels.conftest import now_ts
from tests.channels.fake_provider import FakeProvider
from tests.channels.test_wecom_callback import USER, bind, send
from tests.channels.wire import WeComSide, event_xml
from tests.conftest import TEST_TODAY
from tests.factories import make_customer

PHONE = "13900001111"


def contact_event(
    client: TestClient, side: WeComSide, clock: FixedClock, change: str, external: str,
    *, userid: str = USER,
) -> int:  # fmt: skip
    """WeCom's change_external_contact callback, signed and encrypted; the HTTP status."""
    xml = event_xml(
        to=side.corp_id, sender="sys", created=now_ts(clock), event="change_external_contact",
        fields={"ChangeType": change, "UserID": userid, "ExternalUserID": external,
                "WelcomeCode": "WELCOME"},
    )  # fmt: skip
    request = side.callback(now_ts(clock), xml)
    return client.post("/wecom", params=request.params, content=request.body).status_code


def linked_id(engine: Engine, customer: Customer) -> str | None:
    with read_session(engine) as session:
        row = session.get(Customer, customer.id)
        assert row is not None
        return row.wecom_external_userid


@pytest.fixture
def bound(client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str) -> str:
    """The owner has bound their WeCom account (USER) to the demo shop."""
    assert "绑好了" in bind(client, wecom_side, clock, binding_code)
    return USER


@pytest.fixture
def zhong(engine: Engine, clock: FixedClock, demo_shop: Shop) -> Customer:
    return make_customer(engine, clock, demo_shop, "钟建国", phone=PHONE)


def test_contact_saved_with_the_customers_mobile_is_linked_and_the_owner_told(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    engine: Engine, bound: str, zhong: Customer,
) -> None:  # fmt: skip
    provider.add_contact("wmZHONG", "Sunny", userid=USER, remark="老钟", mobiles=(PHONE,))
    assert contact_event(client, wecom_side, clock, "add_external_contact", "wmZHONG") == 200
    assert linked_id(engine, zhong) == "wmZHONG"
    [get] = provider.calls("/cgi-bin/externalcontact/get")
    assert get.method == "GET" and get.query["external_userid"] == "wmZHONG"
    assert provider.sent_texts(USER) == [
        "对上了 ✓ 企业微信好友「Sunny(备注 老钟)」就是客户 钟建国。\n"
        "以后他删了您的好友,我会提醒您。"
    ]


def test_a_mobile_written_in_the_remark_links_the_contact(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    engine: Engine, bound: str, zhong: Customer,
) -> None:  # fmt: skip
    provider.add_contact("wmZHONG", "Sunny", userid=USER, remark="钟哥 139-0000-1111")
    contact_event(client, wecom_side, clock, "add_external_contact", "wmZHONG")
    assert linked_id(engine, zhong) == "wmZHONG"


def test_the_remark_name_links_a_contact_saved_without_a_phone(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    engine: Engine, bound: str, demo_shop: Shop,
) -> None:  # fmt: skip
    provider.add_contact("wmWANG", "花开富贵", userid=USER, remark="王丽")  # 王姐's alias
    contact_event(client, wecom_side, clock, "add_external_contact", "wmWANG")
    with read_session(engine) as session:
        wang = session.exec(
            select(Customer).where(Customer.shop_id == demo_shop.id, Customer.name == "王姐")
        ).one()
    assert wang.wecom_external_userid == "wmWANG"
    assert "就是客户 王姐" in provider.sent_texts(USER)[0]


def test_two_customers_of_that_name_make_a_question_the_owner_answers_by_number(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    engine: Engine, bound: str, demo_shop: Shop,
) -> None:  # fmt: skip
    first = make_customer(engine, clock, demo_shop, "欧阳姐", phone="13700002222")
    second = make_customer(engine, clock, demo_shop, "欧阳姐", phone="13800003333")
    provider.add_contact("wmOUYANG", "欧阳", userid=USER, remark="欧阳姐")
    contact_event(client, wecom_side, clock, "add_external_contact", "wmOUYANG")
    assert linked_id(engine, first) is None and linked_id(engine, second) is None
    assert provider.sent_texts(USER) == [
        "企业微信好友「欧阳(备注 欧阳姐)」是哪位老客户?\n"
        "1. 欧阳姐 137****2222\n2. 欧阳姐 138****3333\n"
        "回复编号就行;都不是就不用管。"
    ]
    status, reply = send(client, wecom_side, clock, "2")
    assert status == 200
    assert reply.startswith("对上了 ✓ 企业微信好友「欧阳(备注 欧阳姐)」就是客户 欧阳姐。")
    assert linked_id(engine, first) is None and linked_id(engine, second) == "wmOUYANG"


def test_an_answer_out_of_range_asks_again(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    engine: Engine, bound: str, demo_shop: Shop,
) -> None:  # fmt: skip
    make_customer(engine, clock, demo_shop, "欧阳姐")
    second = make_customer(engine, clock, demo_shop, "欧阳姐")
    provider.add_contact("wmOUYANG", "欧阳", userid=USER, remark="欧阳姐")
    contact_event(client, wecom_side, clock, "add_external_contact", "wmOUYANG")
    assert "1 到 2" in send(client, wecom_side, clock, "5")[1]
    assert "对上了" in send(client, wecom_side, clock, "2")[1]
    assert linked_id(engine, second) == "wmOUYANG"


def test_an_unknown_contact_asks_for_a_remark_and_the_edit_then_links_it(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    engine: Engine, bound: str, zhong: Customer,
) -> None:  # fmt: skip
    provider.add_contact("wmLUCKY", "Lucky", userid=USER)
    contact_event(client, wecom_side, clock, "add_external_contact", "wmLUCKY")
    assert linked_id(engine, zhong) is None
    assert provider.sent_texts(USER) == [
        "企业微信好友「Lucky」还没对上店里的客户。\n"
        "是老客户的话,在企业微信里把他的备注改成店里记的名字或手机号,我会自动对上。"
    ]
    # The owner sets the remark in WeCom; WeCom reports the edit.
    provider.add_contact("wmLUCKY", "Lucky", userid=USER, remark="钟建国")
    clock.advance(seconds=30)
    contact_event(client, wecom_side, clock, "edit_external_contact", "wmLUCKY")
    assert linked_id(engine, zhong) == "wmLUCKY"
    assert "就是客户 钟建国" in provider.sent_texts(USER)[-1]


def test_editing_a_contact_that_still_matches_nobody_asks_nothing_more(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    bound: str,
) -> None:  # fmt: skip
    provider.add_contact("wmFRIEND", "老同学", userid=USER)
    contact_event(client, wecom_side, clock, "add_external_contact", "wmFRIEND")
    provider.add_contact("wmFRIEND", "老同学", userid=USER, description="不是客户")
    clock.advance(seconds=30)
    contact_event(client, wecom_side, clock, "edit_external_contact", "wmFRIEND")
    assert len(provider.calls("/cgi-bin/externalcontact/get")) == 2
    assert len(provider.sent_texts(USER)) == 1  # the one question when it was added


def test_a_linked_contact_deleted_later_flags_the_customer_red_for_the_owner(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    engine: Engine, bound: str, demo_shop: Shop,
) -> None:  # fmt: skip
    with read_session(engine) as session:
        wang = session.exec(
            select(Customer).where(Customer.shop_id == demo_shop.id, Customer.name == "王姐")
        ).one()
    assert wang.phone is not None
    provider.add_contact("wmWANG", "花开富贵", userid=USER, mobiles=(wang.phone,))
    contact_event(client, wecom_side, clock, "add_external_contact", "wmWANG")
    clock.advance(hours=2)
    assert contact_event(client, wecom_side, clock, "del_follow_user", "wmWANG") == 200
    with read_session(engine) as session:
        [deleted] = session.exec(
            select(Event).where(Event.customer_id == wang.id, Event.kind == "contact_deleted")
        ).all()
    assert deleted.data["change_type"] == "del_follow_user" and deleted.source == "wecom"
    followups = send(client, wecom_side, clock, "今天该跟进谁")[1]
    assert "🔴王姐 删了好友" in followups


def test_a_redelivered_add_event_reads_and_tells_once(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    engine: Engine, bound: str, zhong: Customer,
) -> None:  # fmt: skip
    provider.add_contact("wmZHONG", "Sunny", userid=USER, mobiles=(PHONE,))
    xml = event_xml(
        to=wecom_side.corp_id, sender="sys", created=now_ts(clock),
        event="change_external_contact",
        fields={"ChangeType": "add_external_contact", "UserID": USER, "ExternalUserID": "wmZHONG"},
    )  # fmt: skip
    for _ in range(3):
        request = wecom_side.callback(now_ts(clock), xml)
        assert client.post("/wecom", params=request.params, content=request.body).status_code == 200
    assert linked_id(engine, zhong) == "wmZHONG"
    assert len(provider.sent_texts(USER)) == 1


def test_two_contacts_added_in_the_same_second_are_both_linked(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    engine: Engine, bound: str, zhong: Customer, demo_shop: Shop,
) -> None:  # fmt: skip
    other = make_customer(engine, clock, demo_shop, "欧阳姐", phone="13700002222")
    provider.add_contact("wmZHONG", "Sunny", userid=USER, mobiles=(PHONE,))
    provider.add_contact("wmOUYANG", "欧阳", userid=USER, mobiles=("+86 137 0000 2222",))
    contact_event(client, wecom_side, clock, "add_external_contact", "wmZHONG")
    contact_event(client, wecom_side, clock, "add_external_contact", "wmOUYANG")
    assert linked_id(engine, zhong) == "wmZHONG"
    assert linked_id(engine, other) == "wmOUYANG"


def test_a_contact_of_unbound_staff_is_not_read(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    zhong: Customer, engine: Engine,
) -> None:  # fmt: skip
    provider.add_contact("wmZHONG", "Sunny", userid="Stranger", mobiles=(PHONE,))
    assert contact_event(
        client, wecom_side, clock, "add_external_contact", "wmZHONG", userid="Stranger"
    ) == 200  # fmt: skip
    assert provider.calls("/cgi-bin/externalcontact/get") == []
    assert linked_id(engine, zhong) is None


def test_a_contact_wecom_cannot_read_changes_nothing(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, provider: FakeProvider,
    bound: str,
) -> None:  # fmt: skip
    assert contact_event(client, wecom_side, clock, "add_external_contact", "wmGONE") == 200
    assert len(provider.calls("/cgi-bin/externalcontact/get")) == 1  # 84061 not external contact
    assert provider.sent_texts(USER) == []


# --- the rules, on hand-made rows -----------------------------------------------------------

ROWS = [
    CustomerRow(1, "王姐", ("王丽",), "15794546385", None),
    CustomerRow(2, "李会计", (), "13811112222", None),
    CustomerRow(3, "李会计", (), None, None),
]


def test_a_saved_mobile_wins_over_a_name_that_points_elsewhere() -> None:
    contact = Contact("wm1", "李会计", remarks=("李会计",), mobiles=("157 9454 6385",))
    assert find_customers(contact, ROWS).customer_ids == (1,)


def test_a_shared_name_is_several_and_nobody_is_none() -> None:
    assert find_customers(Contact("wm1", "x", remarks=("李会计",)), ROWS).customer_ids == (2, 3)
    assert find_customers(Contact("wm1", "陌生人"), ROWS).how == "none"


def test_the_wechat_name_counts_only_when_the_remark_finds_nobody() -> None:
    assert find_customers(Contact("wm1", "王丽", remarks=("不认识",)), ROWS).customer_ids == (1,)
    assert find_customers(Contact("wm1", "王丽", remarks=("李会计",)), ROWS).customer_ids == (2, 3)


def test_mobile_reads_the_ways_numbers_are_written() -> None:
    assert mobile("+86 138-1111-2222") == mobile("8613811112222") == "13811112222"
    assert mobile("0571-8888888") is None and mobile(None) is None


# --- huitou wecom link-contacts -------------------------------------------------------------


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, channel_settings: Settings
) -> Iterator[None]:
    """The CLI's settings: this test's database, today frozen, WeCom at the fake provider."""
    monkeypatch.setenv("HUITOU_DATABASE_URL", database_url)
    monkeypatch.setenv("HUITOU_TODAY", TEST_TODAY.isoformat())
    for name in ("wecom_corp_id", "wecom_agent_id", "wecom_secret", "wecom_api_base"):
        monkeypatch.setenv(f"HUITOU_{name.upper()}", str(getattr(channel_settings, name)))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_link_contacts_command_links_every_contact_staff_already_have(
    cli_env: None, engine: Engine, clock: FixedClock, provider: FakeProvider, demo_shop: Shop,
    zhong: Customer,
) -> None:  # fmt: skip
    make_customer(engine, clock, demo_shop, "欧阳姐")
    make_customer(engine, clock, demo_shop, "欧阳姐")
    with write_session(engine) as session:
        owner_identity = session.exec(
            select(StaffIdentity).where(StaffIdentity.shop_id == demo_shop.id)
        ).first()
        assert owner_identity is not None
        session.add(
            StaffIdentity(
                shop_id=demo_shop.id, staff_id=owner_identity.staff_id, channel="wecom",
                external_id=USER, created_at=clock.now(),
            )
        )  # fmt: skip
    provider.add_contact("wmZHONG", "Sunny", userid=USER, remark="老钟", mobiles=(PHONE,))
    provider.add_contact("wmOUYANG", "欧阳", userid=USER, remark="欧阳姐")
    provider.add_contact("wmLUCKY", "Lucky", userid=USER)
    provider.add_contact("wmELSE", "别人的客户", userid="SomeoneElse", mobiles=(PHONE,))
    result = CliRunner().invoke(cli, ["wecom", "link-contacts", "--shop", demo_shop.slug])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "新对上 1 位,之前已对上 0 位。",
        "  ✓ Sunny(备注 老钟) → 钟建国",
        "1 位对得上不止一位客户,请在企业微信里把备注改成手机号:",
        "  ? 欧阳(备注 欧阳姐):欧阳姐、欧阳姐",
        "1 位没对上。是老客户的话,在企业微信里把备注改成店里记的名字或手机号,会自动对上:",
        "  · Lucky",
    ]
    assert linked_id(engine, zhong) == "wmZHONG"
    assert [r.query["userid"] for r in provider.calls("/cgi-bin/externalcontact/list")] == [USER]
    assert provider.sent_texts(USER) == []  # no questions in bulk
    again = CliRunner().invoke(cli, ["wecom", "link-contacts", "--shop", demo_shop.slug])
    assert again.output.startswith("新对上 0 位,之前已对上 1 位。")


def test_link_contacts_command_needs_wecom_configured(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("HUITOU_DATABASE_URL", database_url)
    monkeypatch.delenv("HUITOU_WECOM_SECRET", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["wecom", "link-contacts", "--shop", "demo"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "还没配置企业微信" in result.output
