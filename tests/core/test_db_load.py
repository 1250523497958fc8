"""db.load and db.adopt give what session.get and an ORM query give, objects and all."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, select

from app.clock import FixedClock
from app.config import PROJECT_ROOT
from app.customers.models import Customer, CustomerSummary
from app.db import adopt, load, read_session, update, write_session
from app.orders.models import Order
from app.orders.service import record
from app.shops.models import Shop
from tests.factories import make_customer, make_shop


def test_load_builds_the_row_as_session_get_does(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock)
    wang = make_customer(
        engine, clock, shop, "王姐", aliases=["王丽"], phone="13800001234", address="幸福小区3栋"
    )
    with read_session(engine) as orm:
        expected = orm.get(Customer, wang.id)
        assert expected is not None
    with Session(engine) as session:
        loaded = load(session, Customer, wang.id)
        assert loaded is not None
        assert loaded.model_dump() == expected.model_dump()
        assert inspect(loaded).persistent
        # The session's one object for the row: session.get and a second load give it back.
        assert session.get(Customer, wang.id) is loaded
        assert load(session, Customer, wang.id) is loaded
        assert load(session, Customer, 10_000) is None


def test_a_loaded_object_changes_as_a_queried_one(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock)
    wang = make_customer(engine, clock, shop, "王姐")
    with write_session(engine) as session:
        loaded = load(session, Customer, wang.id)
        assert loaded is not None
        loaded.note = "只要冰的"
        session.add(loaded)
    with write_session(engine) as session:
        again = load(session, Customer, wang.id)
        assert again is not None and again.note == "只要冰的"
        # A key not named id; a row deleted in this session is gone, as for session.get.
        summary = load(session, CustomerSummary, wang.id)
        assert summary is not None and summary.order_count == 0
        session.delete(summary)
        session.flush()
        assert load(session, CustomerSummary, wang.id) is None


def test_an_object_the_session_holds_comes_from_it(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock)
    wang = make_customer(engine, clock, shop, "王姐")
    with Session(engine) as session:
        held = session.get(Customer, wang.id)
        assert held is not None
        held.note = "not flushed"
        row = {c.key: getattr(wang, c.key) for c in Customer.__table__.columns}  # type: ignore[attr-defined]
        # The held object, unsaved change included: as an ORM query would return it.
        assert adopt(session, Customer, row) is held
        assert load(session, Customer, wang.id) is held and held.note == "not flushed"
        session.commit()  # expires it: the next load reads the row again
        with write_session(engine) as other:
            elsewhere = other.get(Customer, wang.id)
            assert elsewhere is not None
            elsewhere.note = "changed elsewhere"
            other.add(elsewhere)
        assert load(session, Customer, wang.id) is held and held.note == "changed elsewhere"


def test_a_recorded_order_is_a_row_of_the_session(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock)
    wang = make_customer(engine, clock, shop, "王姐")
    with write_session(engine) as session:
        order = record(session=session, shop=shop, customer=wang, quantity=2, clock=clock).order
        assert inspect(order).persistent
        assert session.get(Order, order.id) is order
        assert (order.quantity, order.unit, order.source) == (2, "桶", "chat")
        order.quantity = 3  # a later change is an UPDATE of the row, not a second order
        session.add(order)
    with read_session(engine) as session:
        assert [(o.id, o.quantity) for o in session.exec(select(Order))] == [(order.id, 3)]


def test_a_column_the_row_lacks_is_read_when_asked_for(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock)
    wang = make_customer(engine, clock, shop, "王姐", address="幸福小区3栋")
    with Session(engine) as session:
        row = {c.key: getattr(wang, c.key) for c in Customer.__table__.columns}  # type: ignore[attr-defined]
        del row["address"]
        adopted = adopt(session, Customer, row)
        assert inspect(adopted).persistent and adopted in session
        assert "address" in inspect(adopted).expired_attributes
        assert adopted.address == "幸福小区3栋"  # loaded from the database on first use
        assert not session.dirty  # adopting is not a change
        adopted.address = "幸福小区4栋"  # a change is an UPDATE, as for any loaded object
        session.commit()
    with read_session(engine) as session:
        again = session.get(Customer, wang.id)
        assert again is not None and again.address == "幸福小区4栋"


def test_update_writes_the_row_now_and_leaves_nothing_to_flush(
    engine: Engine, clock: FixedClock
) -> None:
    shop = make_shop(engine, clock)
    wang = make_customer(engine, clock, shop, "王姐")
    with write_session(engine) as session:
        customer = load(session, Customer, wang.id)
        assert customer is not None
        customer.note = "pending change"  # an unflushed change of another column
        update(session, customer, status="lost", paused_until=date(2026, 6, 30))
        assert (customer.status, customer.paused_until) == ("lost", date(2026, 6, 30))
        assert inspect(customer).attrs.status.history.unchanged == ["lost"]
        assert list(session.dirty) == [customer]  # only the note is left for the flush
        assert set(inspect(customer).committed_state) == {"note"}
        # Written already, before any flush: the row as the transaction sees it.
        row = session.connection().execute(
            text("SELECT status, paused_until IS NOT NULL, note FROM customer WHERE id = :id"),
            {"id": wang.id},
        )
        assert tuple(row.one()) == ("lost", True, None)
        gone = Customer(id=10_000, shop_id=shop.id, name="没有")
        with pytest.raises(LookupError):
            update(session, gone, status="lost")
    with read_session(engine) as session:
        stored = session.get(Customer, wang.id)
        assert stored is not None
        assert (stored.status, stored.paused_until, stored.note) == (
            "lost",
            date(2026, 6, 30),
            "pending change",
        )


_FIRST_THING = """
import sys
from sqlmodel import Session
from app import lean
from app.db import _by_key, adopt, make_engine
from app.shops.models import Shop
engine = make_engine(sys.argv[1])
with Session(engine) as session:  # no ORM query has configured the mappers yet
    row = lean.run(session.connection(), _by_key(Shop), {"pk": int(sys.argv[2])}).mappings().one()
    shop = adopt(session, Shop, row)
    shop.name = shop.name + " (renamed)"
    session.commit()
"""


def test_a_new_process_may_adopt_before_any_query(
    engine: Engine, clock: FixedClock, database_url: str
) -> None:
    shop = make_shop(engine, clock)
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_THING, database_url, str(shop.id)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    with read_session(engine) as session:
        stored = session.get(Shop, shop.id)
        assert stored is not None and stored.name == f"{shop.name} (renamed)"
