"""WeCom's side of /wecom over HTTP, with real msg_signature and AES written in the test."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select

from app.clock import FixedClock
from app.customers.models import Customer
from app.db import read_session, write_session
from app.events.models import Event
from app.shops.models import Shop, StaffIdentity
from tests.channels.conftest import inbox_count, now_ts, order_count
from tests.channels.wire import WeComSide, event_xml, field_of, text_xml

USER = "LaoBan"


def send(client: TestClient, side: WeComSide, clock: FixedClock, content: str, *,
         sender: str = USER, msg_id: int | None = None) -> tuple[int, str]:  # fmt: skip
    request = side.callback(
        now_ts(clock),
        text_xml(
            to=side.corp_id, sender=sender, content=content, created=now_ts(clock), msg_id=msg_id
        ),
    )
    response = client.post("/wecom", params=request.params, content=request.body)
    if response.status_code != 200 or not response.text:
        return response.status_code, response.text
    return response.status_code, field_of(side.open_reply(response.text), "Content")


def bind(client: TestClient, side: WeComSide, clock: FixedClock, code: str) -> str:
    status, reply = send(client, side, clock, f"绑定 {code}")
    assert status == 200
    return reply


def test_url_verification_answers_the_decrypted_echostr(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock
) -> None:
    response = client.get("/wecom", params=wecom_side.verification(now_ts(clock), "echo-8675309"))
    assert response.status_code == 200
    assert response.text == "echo-8675309"


def test_url_verification_with_a_wrong_signature_is_refused(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock
) -> None:
    params = wecom_side.verification(now_ts(clock), "echo")
    params["msg_signature"] = "0" * 40
    assert client.get("/wecom", params=params).status_code == 403


def test_unbound_sender_gets_the_guide_and_no_shop_data(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock
) -> None:
    status, reply = send(client, wecom_side, clock, "今天该跟进谁", sender="Stranger")
    assert status == 200
    assert "绑定" in reply and "huitou shop code" in reply
    assert "王姐" not in reply and "清泉" not in reply


def test_binding_then_commands_and_orders(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str,
    engine: Engine, demo_shop: Shop,
) -> None:  # fmt: skip
    assert "绑好了" in bind(client, wecom_side, clock, binding_code)
    with read_session(engine) as session:
        identity = session.exec(select(StaffIdentity).where(StaffIdentity.channel == "wecom")).one()
    assert identity.external_id == USER and identity.shop_id == demo_shop.id
    _, followups = send(client, wecom_side, clock, "今天该跟进谁")
    assert "天没订" in followups or "平时" in followups
    before = order_count(engine)
    _, recorded = send(client, wecom_side, clock, "王姐 2桶")
    assert "已记" in recorded and "王姐" in recorded
    assert order_count(engine) == before + 1


def test_a_binding_code_works_once(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str
) -> None:
    assert "绑好了" in bind(client, wecom_side, clock, binding_code)
    _, reply = send(client, wecom_side, clock, f"绑定 {binding_code}", sender="Other")
    assert "不对或已经过期" in reply


def test_wrong_codes_are_limited_per_sender(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str
) -> None:
    wrong = "000000" if binding_code != "000000" else "111111"
    for _ in range(5):
        assert "不对" in send(client, wecom_side, clock, f"绑定 {wrong}", sender="Guesser")[1]
    _, reply = send(client, wecom_side, clock, f"绑定 {binding_code}", sender="Guesser")
    assert "一小时后" in reply


def test_four_deliveries_of_one_message_act_once(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str,
    engine: Engine,
) -> None:  # fmt: skip
    bind(client, wecom_side, clock, binding_code)
    before = order_count(engine)
    replies = [send(client, wecom_side, clock, "王姐 2桶", msg_id=424242)[1] for _ in range(4)]
    assert len(set(replies)) == 1 and "已记" in replies[0]
    assert order_count(engine) == before + 1


def test_wrong_signature_is_rejected_and_nothing_stored(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, engine: Engine
) -> None:
    request = wecom_side.callback(
        now_ts(clock), text_xml(to="x", sender=USER, content="王姐 2桶", created=now_ts(clock))
    )
    request.params["msg_signature"] = request.params["msg_signature"][::-1]
    before = inbox_count(engine), order_count(engine)
    response = client.post("/wecom", params=request.params, content=request.body)
    assert response.status_code == 403
    assert response.text == '{"detail":"rejected"}'
    assert (inbox_count(engine), order_count(engine)) == before


def test_message_for_another_corp_is_rejected(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, engine: Engine
) -> None:
    other = WeComSide(token=wecom_side.token, aes_key=wecom_side.aes_key, corp_id="wwOTHER")
    request = other.callback(
        now_ts(clock), text_xml(to="x", sender=USER, content="帮助", created=now_ts(clock))
    )
    assert client.post("/wecom", params=request.params, content=request.body).status_code == 403
    assert inbox_count(engine) == 0


def test_old_timestamp_is_rejected(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, engine: Engine
) -> None:
    old = now_ts(clock) - 3600
    request = wecom_side.callback(old, text_xml(to="x", sender=USER, content="帮助", created=old))
    assert client.post("/wecom", params=request.params, content=request.body).status_code == 403
    assert inbox_count(engine) == 0


def test_replayed_request_acts_once_and_is_refused_after_the_window(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str,
    engine: Engine,
) -> None:  # fmt: skip
    bind(client, wecom_side, clock, binding_code)
    request = wecom_side.callback(
        now_ts(clock), text_xml(to="x", sender=USER, content="王姐 2桶", created=now_ts(clock))
    )
    before = order_count(engine)
    first = client.post("/wecom", params=request.params, content=request.body)
    again = client.post("/wecom", params=request.params, content=request.body)
    assert first.status_code == again.status_code == 200
    assert field_of(wecom_side.open_reply(first.text), "Content") == field_of(
        wecom_side.open_reply(again.text), "Content"
    )
    assert order_count(engine) == before + 1
    clock.advance(minutes=10)
    late = client.post("/wecom", params=request.params, content=request.body)
    assert late.status_code == 403
    assert order_count(engine) == before + 1


def test_doctype_and_external_entity_are_rejected_without_reading_the_file(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, engine: Engine,
    tmp_path: Path,
) -> None:  # fmt: skip
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    evil_outer = (
        f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<xml><ToUserName>&x;</ToUserName><Encrypt>AAAA</Encrypt></xml>"
    )
    params = wecom_side.sign_params(now_ts(clock), "AAAA")
    response = client.post("/wecom", params=params, content=evil_outer)
    assert response.status_code == 400
    assert "TOP-SECRET" not in response.text
    # The same inside a correctly signed and encrypted payload.
    evil_inner = (
        f'<!DOCTYPE xml [<!ENTITY x SYSTEM "file://{secret}">]>'
        f"<xml><ToUserName>x</ToUserName><FromUserName>{USER}</FromUserName>"
        "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&x;</Content>"
        "<MsgId>99</MsgId></xml>"
    )
    request = wecom_side.callback(now_ts(clock), evil_inner)
    response = client.post("/wecom", params=request.params, content=request.body)
    assert response.status_code == 400
    assert "TOP-SECRET" not in response.text
    bomb = (
        '<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<xml><Encrypt>&b;</Encrypt></xml>"
    )
    assert client.post("/wecom", params=params, content=bomb).status_code == 400
    assert inbox_count(engine) == 0


def test_oversized_body_is_rejected(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, engine: Engine
) -> None:
    request = wecom_side.callback(
        now_ts(clock),
        text_xml(to="x", sender=USER, content="王" * 40_000, created=now_ts(clock)),
    )
    response = client.post("/wecom", params=request.params, content=request.body)
    assert response.status_code == 413
    assert inbox_count(engine) == 0


def test_endpoint_is_off_without_token_or_key(
    settings: object, engine: Engine, clock: FixedClock, wecom_side: WeComSide
) -> None:
    from app.main import create_app

    app = create_app(settings=settings, engine=engine, clock=clock)  # type: ignore[arg-type]
    with TestClient(app) as bare:
        params = wecom_side.verification(now_ts(clock), "echo")
        assert bare.get("/wecom", params=params).status_code == 404
        assert bare.post("/wecom", params=params, content="<xml/>").status_code == 404
        assert bare.get("/wechat", params=params).status_code == 404


def test_deleted_contact_becomes_a_signal_on_the_customer(
    client: TestClient, wecom_side: WeComSide, clock: FixedClock, binding_code: str,
    engine: Engine, demo_shop: Shop,
) -> None:  # fmt: skip
    bind(client, wecom_side, clock, binding_code)
    with write_session(engine) as session:
        customer = session.exec(
            select(Customer).where(Customer.shop_id == demo_shop.id, Customer.name == "王姐")
        ).one()
        customer.wecom_external_userid = "wmEXTERNAL001"
        session.add(customer)
        customer_id = customer.id
    xml = event_xml(
        to=wecom_side.corp_id, sender="sys", created=now_ts(clock),
        event="change_external_contact",
        fields={"ChangeType": "del_follow_user", "UserID": USER,
                "ExternalUserID": "wmEXTERNAL001"},
    )  # fmt: skip
    for _ in range(2):  # a redelivery logs nothing more
        request = wecom_side.callback(now_ts(clock), xml)
        assert client.post("/wecom", params=request.params, content=request.body).status_code == 200
    with read_session(engine) as session:
        events = session.exec(
            select(Event).where(Event.customer_id == customer_id, Event.kind == "contact_deleted")
        ).all()
    assert len(events) == 1
    assert events[0].data["change_type"] == "del_follow_user"
    assert events[0].source == "wecom"
