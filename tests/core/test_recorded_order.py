"""A recorded order is an ordinary row of the caller's session, and says what came before it."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, inspect
from sqlmodel import select

from app.clock import FixedClock
from app.db import read_session, write_session
from app.flows import record_order
from app.orders.models import Order
from tests.factories import make_customer, make_shop


def test_a_recorded_order_is_a_row_of_the_session(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock)
    wang = make_customer(engine, clock, shop, "王姐")
    with write_session(engine) as session:
        order = record_order(
            session=session, shop=shop, customer=wang, quantity=2, clock=clock
        ).order
        assert inspect(order).persistent
        assert session.get(Order, order.id) is order
        assert (order.quantity, order.unit, order.source) == (2, "桶", "chat")
        order.quantity = 3  # a later change is an UPDATE of the row, not a second order
        session.add(order)
    with read_session(engine) as session:
        assert [(o.id, o.quantity) for o in session.exec(select(Order))] == [(order.id, 3)]


def test_the_second_order_reports_the_record_as_the_first_left_it(
    engine: Engine, clock: FixedClock
) -> None:
    shop = make_shop(engine, clock)
    wang = make_customer(engine, clock, shop, "王姐")
    with write_session(engine) as session:
        first = record_order(session=session, shop=shop, customer=wang, quantity=2, clock=clock)
        second = record_order(session=session, shop=shop, customer=wang, quantity=1, clock=clock)
    assert (first.prior.order_count, first.prior.last_order_on) == (0, None)
    assert (second.prior.order_count, second.prior.last_order_on) == (1, date(2026, 6, 17))
    assert not second.prior.has_pending
