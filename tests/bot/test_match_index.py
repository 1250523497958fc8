"""The cached per-shop match index: same answers as ranking every row, never stale.

The index is cached per database and shop and checked against a fingerprint read in the
caller's own transaction: the shop's match tag, kept current by database triggers
(migration 0008). These tests
write through one engine (as another process would) and match through another.
"""

from __future__ import annotations

import random

from sqlalchemy import Engine, text
from sqlmodel import Session, select

from app.clock import FixedClock
from app.customers.matching import MatchIndex, match_customers, rank, shop_rows
from app.customers.models import Customer
from app.customers.service import create_customer
from app.db import make_engine, write_session
from app.shops.models import Shop
from tests.bot.parse_corpus import CASES
from tests.factories import make_shop


def _queries(rows_names: list[str]) -> set[str]:
    found: set[str] = set()
    for _, expected in CASES:
        if expected.get("customer"):
            found.add(str(expected["customer"]))
        for item in expected.get("items", []):
            if item.get("customer"):
                found.add(str(item["customer"]))
    for name in rows_names:  # each name, cut and mistyped, in every tier
        found.update({name, name[:1], name[1:], name[:-1], name + "姐", "小" + name})
    # One character replaced, added or dropped, as thumbs do: mostly the fuzzy tier, where
    # the index scores only the lengths that can reach the cutoff.
    chars = sorted(set("".join(rows_names)))
    typing = random.Random(4)
    for name in rows_names:
        for _ in range(4):
            typed = list(name)
            at = typing.randrange(len(typed) + 1)
            way = typing.randrange(3)
            if way == 0 and at < len(typed):
                typed[at] = typing.choice(chars)
            elif way == 1:
                typed.insert(at, typing.choice(chars))
            elif len(typed) > 1:
                del typed[min(at, len(typed) - 1)]
            found.add("".join(typed))
    found.update(
        {"王丽", "wangjie", "汪姐", "老李", "尾号6385", "6385", "13800001234", "3栋", "幸福小区"}
    )
    found.update({"李会计", "3号楼", "张", "Wang Jie", "  ", "x", "12", "1234", "手机6385"})
    # A long forwarded line (the pieces lookup gives way to a scan) and a stray NUL.
    found.update({"王姐:明天送两桶水哈,顺便问下老李那边要不要水,幸福小区3栋" * 2, "王\x00姐"})
    return found


def test_index_ranks_exactly_like_every_row(engine: Engine, demo_shop: Shop) -> None:
    with Session(engine) as session:
        rows = shop_rows(session=session, shop=demo_shop)
    index = MatchIndex(rows)
    queries = _queries([r.name for r in rows][:80])
    assert len(queries) > 500
    fuzzy = [q for q in queries if (best := rank(q, rows)) and best[0].how == "fuzzy"]
    assert len(fuzzy) > 50
    differing = [q for q in sorted(queries) if index.rank(q) != rank(q, rows)]
    assert differing == []


def _other_engine(engine: Engine) -> Engine:
    return make_engine(engine.url.render_as_string(hide_password=False))


def _names(engine: Engine, shop: Shop, query: str) -> list[str]:
    with Session(engine) as session:
        found = []
        for match in match_customers(session=session, shop=shop, query=query):
            customer = session.get(Customer, match.customer_id)
            assert customer is not None
            found.append(customer.name)
        return found


def test_another_process_adding_renaming_forgetting_is_seen_at_once(
    engine: Engine, demo_shop: Shop, clock: FixedClock
) -> None:
    writer = _other_engine(engine)  # another process: its own engine, pool and connections
    try:
        assert _names(engine, demo_shop, "翠花姐姐") == []  # index built and cached
        with write_session(writer) as session:
            shop = session.merge(demo_shop, load=False)
            created = create_customer(
                session=session, shop=shop, name="翠花姐", clock=clock, address="槐树巷9号"
            )
            customer_id = created.id
        # Containment, not the exact-name query: only the cached index can answer this.
        assert _names(engine, demo_shop, "翠花姐姐") == ["翠花姐"]
        assert _names(engine, demo_shop, "槐树巷") == ["翠花姐"]

        with write_session(writer) as session:
            customer = session.get(Customer, customer_id)
            assert customer is not None
            customer.name = "秋菊姐"
            customer.aliases = ["菊姐"]
            session.add(customer)
        assert _names(engine, demo_shop, "翠花姐姐") == []
        assert _names(engine, demo_shop, "菊姐") == ["秋菊姐"]

        # Raw SQL too (any writer, any language): the triggers keep the fingerprint honest.
        with writer.begin() as conn:
            conn.execute(
                text("UPDATE customer SET address = '柳树巷1号' WHERE id = :id"),
                {"id": customer_id},
            )
        assert _names(engine, demo_shop, "槐树巷") == []
        assert _names(engine, demo_shop, "柳树巷") == ["秋菊姐"]

        with write_session(writer) as session:
            customer = session.get(Customer, customer_id)
            assert customer is not None
            customer.status = "forgotten"
            session.add(customer)
        assert _names(engine, demo_shop, "菊姐") == []
        assert _names(engine, demo_shop, "柳树巷") == []

        # A row deleted outright (raw SQL: the app itself only ever marks customers).
        with writer.begin() as conn:
            conn.execute(
                text("UPDATE customer SET status = 'active' WHERE id = :id"), {"id": customer_id}
            )
        assert _names(engine, demo_shop, "菊姐") == ["秋菊姐"]
        with writer.begin() as conn:
            conn.execute(
                text("DELETE FROM customer_summary WHERE customer_id = :id"), {"id": customer_id}
            )
            conn.execute(text("DELETE FROM event WHERE customer_id = :id"), {"id": customer_id})
            conn.execute(text("DELETE FROM customer WHERE id = :id"), {"id": customer_id})
        assert _names(engine, demo_shop, "菊姐") == []
    finally:
        writer.dispose()


def test_uncommitted_changes_count_and_a_rollback_leaves_no_trace(
    engine: Engine, demo_shop: Shop, clock: FixedClock
) -> None:
    assert _names(engine, demo_shop, "翠花姐姐") == []
    with Session(engine) as session:
        shop = session.merge(demo_shop, load=False)
        create_customer(session=session, shop=shop, name="翠花姐", clock=clock)
        # Same transaction, not yet committed: the new customer is findable in it...
        found = match_customers(session=session, shop=shop, query="翠花姐姐")
        assert [m.how for m in found] == ["contains"]
        session.rollback()
    # ...and gone once rolled back, even though an index with her was built meanwhile.
    assert _names(engine, demo_shop, "翠花姐姐") == []
    # A different customer taking the rolled-back row id is never confused with her.
    with write_session(engine) as session:
        shop = session.merge(demo_shop, load=False)
        create_customer(session=session, shop=shop, name="秋菊姐", clock=clock)
    assert _names(engine, demo_shop, "翠花姐姐") == []
    assert _names(engine, demo_shop, "秋菊姐姐") == ["秋菊姐"]


def test_other_shops_never_match_through_the_cache(
    engine: Engine, demo_shop: Shop, clock: FixedClock
) -> None:
    with write_session(engine) as session:
        other = Shop(
            slug="other",
            name="别家",
            industry="water",
            timezone=demo_shop.timezone,
            settings={},
            created_at=clock.now(),
        )
        session.add(other)
        session.flush()
        create_customer(session=session, shop=other, name="翠花姐", clock=clock)
        other_id = other.id
    assert _names(engine, demo_shop, "翠花姐姐") == []
    with Session(engine) as session:
        other_shop = session.exec(select(Shop).where(Shop.id == other_id)).one()
        assert [
            m.how for m in match_customers(session=session, shop=other_shop, query="翠花姐姐")
        ] == ["contains"]


def test_a_shop_without_customers_finds_its_first_one_at_once(
    engine: Engine, clock: FixedClock
) -> None:
    # No customer, no match tag row yet: nothing found, and an (empty) index cached.
    shop = make_shop(engine, clock, slug="empty", name="新店")
    with Session(engine) as session:
        for query in ("翠花姐", "翠花"):
            assert match_customers(session=session, shop=shop, query=query) == []
    writer = _other_engine(engine)
    try:
        with write_session(writer) as session:
            create_customer(session=session, shop=session.merge(shop), name="翠花姐", clock=clock)
    finally:
        writer.dispose()
    with Session(engine) as session:
        assert [m.how for m in match_customers(session=session, shop=shop, query="翠花")] == [
            "contains"
        ]
        assert [m.how for m in match_customers(session=session, shop=shop, query="翠花姐")] == [
            "name"
        ]
