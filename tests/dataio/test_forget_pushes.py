"""Forgetting a customer also takes them out of digests, local pushes, questions and texts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import select

from app.bot.models import PendingQuestion
from app.channels.models import OutboxMessage
from app.channels.outbox import OutboxPusher
from app.clock import FixedClock, local_today
from app.config import Settings
from app.customers.models import Customer
from app.dataio.privacy import forget_customer
from app.db import read_session, write_session
from app.digest.models import DigestDelivery
from app.digest.service import run_digest
from app.outreach.sms import SmsMessage
from app.shops.models import Shop
from tests.conftest import TEST_TODAY
from tests.factories import add_orders, make_customer, make_shop

PHONE = "13912345678"


def test_forget_scrubs_what_was_pushed_and_asked_about_the_customer(
    engine: Engine, clock: FixedClock, settings: Settings
) -> None:
    shop = make_shop(engine, clock)
    assert shop.id is not None
    for name, silent in (("王姐", 30), ("老李", 35)):
        customer = make_customer(engine, clock, shop, name, phone=PHONE if name == "王姐" else None)
        last = TEST_TODAY - timedelta(days=silent)
        add_orders(engine, clock, shop, customer, [last - timedelta(days=10 * i) for i in range(6)])
    result = run_digest(
        engine=engine, shop_id=shop.id, day=local_today(clock, shop.timezone),
        settings=settings, clock=clock, pushers=[OutboxPusher(engine=engine, clock=clock)],
    )  # fmt: skip
    assert result.status == "sent"
    with write_session(engine) as s:
        wang = s.exec(select(Customer).where(Customer.name == "王姐")).one()
        s.add(PendingQuestion(
            shop_id=shop.id, sender="local:x", kind="create_customer",
            payload={"name": "王姐", "quantity": 2}, asked_at=clock.now(),
            expires_at=clock.now() + timedelta(minutes=10),
        ))  # fmt: skip
        s.add(SmsMessage(
            key="sms-1", shop_id=shop.id, phone=PHONE, purpose="outreach", template_id="T1",
            params=["王姐", "好久不见"], status="sent", created_at=clock.now(),
        ))  # fmt: skip
    with read_session(engine) as s:
        (delivery,) = s.exec(select(DigestDelivery)).all()
        assert "王姐" in delivery.text and "老李" in delivery.text
        assert "王姐" in s.exec(select(OutboxMessage.text)).one()

    with write_session(engine) as s:
        customer = s.get(Customer, wang.id)
        fresh = s.get(Shop, shop.id)
        assert customer is not None and fresh is not None
        outcome = forget_customer(session=s, shop=fresh, customer=customer, clock=clock)
    assert outcome.pushes_cleared == 4  # the digest, its local push, the question, the text

    gone = f"已删除客户#{wang.id}"
    with read_session(engine) as s:
        (delivery,) = s.exec(select(DigestDelivery)).all()
        assert "王姐" not in repr((delivery.text, delivery.items))
        assert gone in delivery.text
        assert "老李" in delivery.text  # the other customers' lines stay as they were
        assert any(i["title"] == gone for i in delivery.items)
        assert "王姐" not in s.exec(select(OutboxMessage.text)).one()
        assert s.exec(select(PendingQuestion)).all() == []
        (sms,) = s.exec(select(SmsMessage)).all()
        assert (sms.phone, sms.params) == ("139****5678", [])
