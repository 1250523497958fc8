"""app.lean.run gives what Connection.execute gives, on SQLite and PostgreSQL alike: the same
rows with the same Python types, the same row counts, the same errors, the same listeners."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, event, exc, func, select
from sqlalchemy.engine import Result
from sqlmodel import Session

from app import lean
from app.bot import pending
from app.channels.inbox import WriteAttempted, _reading
from app.customers import matching, risk
from app.customers.models import Customer, CustomerSummary
from app.db import _by_key, write_connection
from app.events import service as events
from app.events.models import Event
from app.orders.models import Order
from app.reports import monthly
from app.shops.models import Shop

_ORDERS = Order.__table__  # type: ignore[attr-defined]
_EVENTS = Event.__table__  # type: ignore[attr-defined]


def _ids(engine: Engine, shop: Shop) -> list[int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(_ORDERS.c.customer_id)
            .where(_ORDERS.c.shop_id == shop.id)
            .group_by(_ORDERS.c.customer_id)
            .order_by(func.count().desc(), _ORDERS.c.customer_id)
            .limit(3)
        )
        return [r[0] for r in rows]


def _reads(engine: Engine, shop: Shop) -> list[tuple[Any, dict[str, Any]]]:
    """Prebuilt statements of the hot paths, with parameters that find rows in the demo."""
    ids = _ids(engine, shop)
    with engine.connect() as conn:
        name = conn.execute(
            select(Customer.__table__.c.name).where(  # type: ignore[attr-defined]
                Customer.__table__.c.id == ids[0]  # type: ignore[attr-defined]
            )
        ).scalar_one()
        first_event = conn.execute(
            select(func.min(_EVENTS.c.id)).where(_EVENTS.c.shop_id == shop.id)
        ).scalar_one()
    return [
        (matching._EXACT, {"shop": shop.id, "name": name}),
        (matching._EXACT, {"shop": shop.id, "name": "没有这个人"}),
        (matching._FINGERPRINT, {"shop": shop.id}),
        (_by_key(Customer), {"pk": ids[0]}),
        (_by_key(CustomerSummary), {"pk": ids[1]}),
        (risk._SELECT_ORDERS.fixed[0], {"c0": ids[0]}),
        (risk._SELECT_ORDERS.fixed[2], {f"c{i}": cid for i, cid in enumerate(ids)}),
        (risk._SELECT_EVENTS.fixed[2], {f"c{i}": cid for i, cid in enumerate(ids)}),
        (events._UNDO_PAYLOADS_AFTER, {"shop": shop.id, "after": first_event or 0}),
        (monthly._FIRST_ORDERS, {"shop": shop.id}),
        (
            monthly._MONTH_ORDERS,
            {"shop": shop.id, "first": date(2026, 5, 1), "last": date(2026, 6, 17), "unit": "桶"},
        ),
        (pending._WAITING, {"shop": shop.id, "sender": "nobody"}),
    ]


def test_reads_give_the_same_rows_and_types(engine: Engine, demo_shop: Shop) -> None:
    checked = 0
    for statement, params in _reads(engine, demo_shop):
        with engine.connect() as conn:
            expected = [tuple(r) for r in conn.execute(statement, params)]
            got = lean.run(conn, statement, params)
            assert isinstance(got, lean.Rows), statement  # the lean plan, not the fallback
            rows = [tuple(r) for r in got]
        assert rows == expected, statement
        assert [[type(v) for v in r] for r in rows] == [[type(v) for v in r] for r in expected]
        checked += bool(rows)
    assert checked >= 9  # all but the nobody-reads give rows on the demo


def test_rows_offer_what_the_callers_use(engine: Engine, demo_shop: Shop) -> None:
    ids = _ids(engine, demo_shop)
    with engine.connect() as conn:
        statement = _by_key(Customer)
        expected = conn.execute(statement, {"pk": ids[0]}).mappings().one()
        got = lean.run(conn, statement, {"pk": ids[0]})
        assert got.mappings().first() == dict(expected)
        assert got.one().name == expected["name"]  # fields named after the columns
        assert got.scalar() == ids[0] and got.scalar_one() == ids[0]
        assert got.scalars() == [ids[0]]
        none = lean.run(conn, statement, {"pk": -1})
        assert none.first() is None and none.scalar() is None and none.all() == []
        with pytest.raises(exc.NoResultFound):
            none.one()
        several = lean.run(conn, risk._SELECT_ORDERS.fixed[0], {"c0": ids[0]})
        assert len(several.all()) > 1
        with pytest.raises(exc.MultipleResultsFound):
            several.one()
        # Dates and the events' JSON come back as Python values.
        order_row = several.first()
        assert isinstance(order_row.order_date, date)
        event_rows = lean.run(conn, risk._SELECT_EVENTS.fixed[0], {"c0": ids[0]}).all()
        for row in event_rows:
            assert isinstance(row.occurred_at, datetime)
            assert row.data is None or isinstance(row.data, dict)


def test_writes_count_rows_and_batch(engine: Engine, demo_shop: Shop) -> None:
    ids = _ids(engine, demo_shop)
    update = (
        CustomerSummary.__table__.update()  # type: ignore[attr-defined]
        .where(CustomerSummary.__table__.c.customer_id == bindparam("cid"))  # type: ignore[attr-defined]
        .values(last_quantity=bindparam("q"))
    )
    with write_connection(engine) as conn:
        assert lean.run(conn, update, {"cid": ids[0], "q": 7}).rowcount == 1
        assert lean.run(conn, update, {"cid": -1, "q": 7}).rowcount == 0
        batch = [{"cid": ids[1], "q": 8}, {"cid": ids[2], "q": 9}, {"cid": -1, "q": 1}]
        assert lean.run(conn, update, batch).rowcount == 2
    with Session(engine) as session:
        got = [session.get(CustomerSummary, cid) for cid in ids]
        assert [s.last_quantity for s in got if s is not None] == [7, 8, 9]


def test_an_insert_returns_its_key_and_a_bad_one_raises_sqlalchemys_error(
    engine: Engine, demo_shop: Shop
) -> None:
    ids = _ids(engine, demo_shop)
    insert = (
        _EVENTS.insert()
        .values(
            shop_id=bindparam("shop"),
            customer_id=bindparam("cid"),
            kind=bindparam("kind"),
            occurred_at=bindparam("at"),
            data=bindparam("data"),
            source=bindparam("source"),
        )
        .returning(_EVENTS.c.id, _EVENTS.c.data)
    )
    params = {
        "shop": demo_shop.id,
        "cid": ids[0],
        "kind": "note",
        "at": datetime(2026, 6, 17, 2, 0, tzinfo=UTC),
        "data": {"x": [1]},
        "source": "chat",
    }
    with write_connection(engine) as conn:
        result = lean.run(conn, insert, params)
        assert isinstance(result, lean.Rows)
        row = result.one()
        assert row.data == {"x": [1]}
        stored = conn.execute(select(_EVENTS.c.data).where(_EVENTS.c.id == row.id)).scalar_one()
        assert stored == {"x": [1]}
    # No such customer: the foreign key refuses it.
    with pytest.raises(exc.IntegrityError), write_connection(engine) as conn:
        lean.run(conn, insert, {**params, "cid": 10_000_000})
    with engine.connect() as conn:  # the failed transaction left nothing behind
        count = conn.execute(
            select(func.count()).where(_EVENTS.c.customer_id == 10_000_000)
        ).scalar_one()
        assert count == 0


def test_listeners_see_lean_statements_and_the_read_only_guard_holds(
    engine: Engine, demo_shop: Shop
) -> None:
    seen: list[str] = []

    def listen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        with engine.connect() as conn:
            lean.run(conn, matching._FINGERPRINT, {"shop": demo_shop.id})
        assert any(s.startswith("SELECT shop_match_tag.tag") for s in seen)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    # A read-only session refuses a lean write as it refuses any other.
    with _reading(engine) as session:
        conn = session.connection()
        with pytest.raises(WriteAttempted):
            lean.run(conn, pending._DELETE, {"shop": demo_shop.id, "sender": "x"})


def test_a_connection_outside_a_transaction_begins_one(engine: Engine, demo_shop: Shop) -> None:
    with engine.connect() as conn:
        assert not conn.in_transaction()
        lean.run(conn, matching._FINGERPRINT, {"shop": demo_shop.id})
        assert conn.in_transaction()


def test_what_the_plan_does_not_cover_runs_through_sqlalchemy(
    engine: Engine, demo_shop: Shop
) -> None:
    ids = _ids(engine, demo_shop)
    with engine.connect() as conn:
        # An expanding IN list is rewritten per execution: SQLAlchemy's own path.
        result = lean.run(conn, risk._SELECT_ORDERS.many, {"cids": ids})
        assert isinstance(result, Result)
        assert sorted(result.all()) == sorted(
            conn.execute(risk._SELECT_ORDERS.many, {"cids": ids}).all()
        )


def test_a_value_its_column_refuses_raises_as_in_sqlalchemy(
    engine: Engine, demo_shop: Shop
) -> None:
    statement = select(_EVENTS.c.id).where(_EVENTS.c.occurred_at > bindparam("at"))
    naive = {"at": datetime(2026, 6, 17, 2, 0)}  # the column takes aware datetimes only
    with engine.connect() as conn, pytest.raises(exc.StatementError, match="timezone"):
        conn.execute(statement, naive)
    with engine.connect() as conn, pytest.raises(exc.StatementError, match="timezone"):
        lean.run(conn, statement, naive)


def test_a_missing_value_raises_as_in_sqlalchemy(engine: Engine, demo_shop: Shop) -> None:
    with engine.connect() as conn:
        with pytest.raises(exc.StatementError, match="required for bind parameter 'shop'"):
            conn.execute(matching._FINGERPRINT, {"other": 1})
        with pytest.raises(exc.StatementError, match="required for bind parameter 'shop'"):
            lean.run(conn, matching._FINGERPRINT, {"other": 1})
