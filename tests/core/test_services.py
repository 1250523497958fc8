"""Shops, binding codes, customers: creation, lookup, tenancy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.clock import FixedClock
from app.customers.service import CustomerError, create_customer, find_customers, mask_phone
from app.db import read_session, write_session
from app.shops.models import Staff, StaffIdentity
from app.shops.service import (
    ShopError,
    consume_binding_code,
    create_shop,
    get_shop,
    issue_binding_code,
    owner_of,
)
from tests.factories import make_customer, make_shop


def test_new_shop_has_an_owner_with_a_local_identity(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock, slug="quanshui", name="清泉水站")
    with read_session(engine) as s:
        owner = owner_of(session=s, shop=shop)
        assert owner.role == "owner"
        identity = s.exec(select(StaffIdentity).where(StaffIdentity.staff_id == owner.id)).one()
        assert identity.channel == "local"
        assert get_shop(session=s, ref="quanshui").id == shop.id
        assert get_shop(session=s, ref=str(shop.id)).slug == "quanshui"
    assert shop.settings["unit"] == "桶"
    assert shop.settings["unit_price_cents"] == 1800


@pytest.mark.parametrize(
    ("name", "industry", "message"),
    [("", "water", "店名不能为空"), ("洗车店", "bakery", "行业只能是")],
)
def test_shop_creation_refuses_bad_input(
    engine: Engine, clock: FixedClock, name: str, industry: str, message: str
) -> None:
    with pytest.raises(ShopError, match=message), write_session(engine) as s:
        create_shop(session=s, name=name, industry=industry, clock=clock)
    with read_session(engine) as s:
        assert s.exec(select(Staff)).first() is None  # nothing half-created


def test_duplicate_slug_is_refused(engine: Engine, clock: FixedClock) -> None:
    make_shop(engine, clock, slug="same")
    with pytest.raises(ShopError, match="已有标识"):
        make_shop(engine, clock, slug="same")


def test_unknown_shop_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(ShopError, match="没有这个店铺"), read_session(engine) as s:
        get_shop(session=s, ref="nope")


def test_binding_code_is_six_digits_one_time_and_expires(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock)
    with write_session(engine) as s:
        code = issue_binding_code(session=s, shop=shop, clock=clock)
    assert len(code) == 6 and code.isdigit()
    with write_session(engine) as s:
        assert not consume_binding_code(
            session=s, shop=shop, code="000000" if code != "000000" else "111111", clock=clock
        )
        assert consume_binding_code(session=s, shop=shop, code=code, clock=clock)
        assert not consume_binding_code(session=s, shop=shop, code=code, clock=clock)  # spent
    with write_session(engine) as s:
        late = issue_binding_code(session=s, shop=shop, clock=clock)
    clock.advance(hours=24, seconds=1)
    with write_session(engine) as s:
        assert not consume_binding_code(session=s, shop=shop, code=late, clock=clock)


def test_a_fresh_code_replaces_the_previous_one(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock)
    with write_session(engine) as s:
        first = issue_binding_code(session=s, shop=shop, clock=clock)
        second = issue_binding_code(session=s, shop=shop, clock=clock)
    with write_session(engine) as s:
        if first != second:
            assert not consume_binding_code(session=s, shop=shop, code=first, clock=clock)
        assert consume_binding_code(session=s, shop=shop, code=second, clock=clock)


def test_only_the_code_hash_is_stored(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock)
    with write_session(engine) as s:
        code = issue_binding_code(session=s, shop=shop, clock=clock)
    assert shop.binding_code_hash is not None and code not in shop.binding_code_hash
    assert shop.binding_code_expires_at == clock.now() + timedelta(hours=24)


@pytest.mark.parametrize(
    ("phone", "shown"),
    [("13800001234", "138****1234"), (None, ""), ("", ""), ("12345", "*****")],
)
def test_phone_masking(phone: str | None, shown: str) -> None:
    assert mask_phone(phone) == shown


def test_find_customers_exact_then_alias_then_contains(engine: Engine, clock: FixedClock) -> None:
    shop = make_shop(engine, clock)
    make_customer(engine, clock, shop, "王姐", aliases=["王丽"])
    make_customer(engine, clock, shop, "王姐姐")
    make_customer(engine, clock, shop, "3号楼李会计")
    with read_session(engine) as s:
        assert [c.name for c in find_customers(session=s, shop=shop, query="王姐")] == ["王姐"]
        assert [c.name for c in find_customers(session=s, shop=shop, query="王丽")] == ["王姐"]
        assert [c.name for c in find_customers(session=s, shop=shop, query="李会计")] == [
            "3号楼李会计"
        ]
        assert {c.name for c in find_customers(session=s, shop=shop, query="王")} == {
            "王姐",
            "王姐姐",
        }
        assert find_customers(session=s, shop=shop, query="  ") == []


def test_customers_of_another_shop_are_never_found(engine: Engine, clock: FixedClock) -> None:
    a = make_shop(engine, clock, slug="shop-a")
    b = make_shop(engine, clock, slug="shop-b")
    make_customer(engine, clock, b, "王姐")
    with read_session(engine) as s:
        assert find_customers(session=s, shop=a, query="王姐") == []
        assert find_customers(session=s, shop=a, query="王") == []


@pytest.mark.parametrize("name", ["", "   ", "名" * 51])
def test_customer_names_must_be_1_to_50_chars(engine: Engine, clock: FixedClock, name: str) -> None:
    shop = make_shop(engine, clock)
    with pytest.raises(CustomerError), write_session(engine) as s:
        create_customer(session=s, shop=shop, name=name, clock=clock)
