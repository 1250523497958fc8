"""Tests for the seeded water-station simulator used by the demo."""

from __future__ import annotations

import itertools
import re
import statistics
from collections import Counter, defaultdict
from datetime import date, timedelta

import chinese_calendar
import pytest

from app.demo.simulator import (
    SUMMER_MONTHS,
    DemoCustomer,
    DemoData,
    DemoOrder,
    months_before,
    simulate_water_station,
    spring_festival,
    spring_festival_window,
)

AS_OF_DATES = (date(2026, 11, 20), date(2025, 3, 1))
PHONE = re.compile(r"^1(3\d|5[0-35-9]|8\d|9[13589])\d{8}$")


@pytest.fixture(scope="module", params=AS_OF_DATES, ids=str)
def data(request: pytest.FixtureRequest) -> DemoData:
    as_of: date = request.param
    return simulate_water_station(as_of=as_of)


def orders_by_customer(data: DemoData) -> dict[str, list[DemoOrder]]:
    """Orders of each customer, oldest first (data.orders is already sorted by date)."""
    grouped: dict[str, list[DemoOrder]] = defaultdict(list)
    for order in data.orders:
        grouped[order.customer_key].append(order)
    return grouped


def intervals(orders: list[DemoOrder]) -> list[int]:
    return [(b.order_date - a.order_date).days for a, b in itertools.pairwise(orders)]


def by_name(data: DemoData, name: str) -> DemoCustomer:
    (customer,) = [c for c in data.customers if c.name == name]
    return customer


def of_archetype(data: DemoData, archetype: str) -> list[DemoCustomer]:
    return [c for c in data.customers if c.archetype == archetype]


# --- determinism and shape ---------------------------------------------------------------


def test_same_arguments_give_identical_output() -> None:
    first = simulate_water_station(as_of=date(2026, 11, 20), seed=11)
    second = simulate_water_station(as_of=date(2026, 11, 20), seed=11)
    assert first == second


def test_different_seed_gives_different_data() -> None:
    one = simulate_water_station(as_of=date(2026, 11, 20), seed=1)
    two = simulate_water_station(as_of=date(2026, 11, 20), seed=2)
    assert one.orders != two.orders
    assert [c.name for c in one.customers] != [c.name for c in two.customers]
    # The showcase customers exist whatever the seed.
    for data in (one, two):
        assert {"王姐", "3号楼李会计", "老张"} <= {c.name for c in data.customers}


def test_counts_and_date_bounds(data: DemoData) -> None:
    start = months_before(data.as_of, 18)
    assert len(data.customers) == 300
    assert len({c.key for c in data.customers}) == 300
    assert len(data.orders) > 3000
    assert min(o.order_date for o in data.orders) >= start
    assert max(o.order_date for o in data.orders) <= data.as_of
    keys = [(o.order_date, o.hour, o.customer_key) for o in data.orders]
    assert keys == sorted(keys)
    known = {c.key for c in data.customers}
    assert {o.customer_key for o in data.orders} == known  # everyone has at least one order


def test_order_fields_are_plausible(data: DemoData) -> None:
    kinds = {c.key: c.kind for c in data.customers}
    for order in data.orders:
        assert 7 <= order.hour <= 20
        assert order.quantity >= 1
        unit, rest = divmod(order.amount_cents, order.quantity)
        assert rest == 0
        assert 1400 <= unit <= 2200
        if kinds[order.customer_key] == "household":
            assert order.quantity <= 3
        else:
            assert 3 <= order.quantity <= 10
    # Each customer pays one unit price throughout.
    prices: dict[str, set[int]] = defaultdict(set)
    for order in data.orders:
        prices[order.customer_key].add(order.amount_cents // order.quantity)
    assert all(len(p) == 1 for p in prices.values())


def test_customers_join_at_different_times(data: DemoData) -> None:
    start = months_before(data.as_of, 18)
    firsts = [o[0].order_date for o in orders_by_customer(data).values()]
    early = sum(d <= start + timedelta(days=45) for d in firsts)
    late = sum(d >= start + timedelta(days=120) for d in firsts)
    assert early >= 100
    assert late >= 50


def test_names_are_distinct_and_aliases_unambiguous(data: DemoData) -> None:
    names = [c.name for c in data.customers]
    assert len(names) == len(set(names))
    aliases = [a for c in data.customers for a in c.aliases]
    assert len(aliases) == len(set(aliases))
    assert not set(aliases) & set(names)
    assert sum(1 for c in data.customers if c.aliases) >= 30
    # A mix of the ways owners refer to people and places.
    assert any(n.startswith("老") for n in names)
    assert any(n.startswith("小") for n in names)
    assert any(n.endswith(("姐", "阿姨")) for n in names)
    assert any(n.endswith(("物业", "幼儿园", "餐馆", "财务室", "办公室")) for n in names)


def test_contact_details_are_plausible(data: DemoData) -> None:
    phones = [c.phone for c in data.customers if c.phone is not None]
    assert all(PHONE.match(p) for p in phones)
    assert len(phones) == len(set(phones))
    assert 0.7 * len(data.customers) < len(phones) < len(data.customers)  # some are missing
    assert any(c.address is None for c in data.customers)
    assert {c.kind for c in data.customers} == {"household", "office"}


def test_archetype_shares_at_default_size(data: DemoData) -> None:
    counts = Counter(c.archetype for c in data.customers)
    assert counts["showcase"] == 3
    assert 155 <= counts["regular"] <= 170
    assert 40 <= counts["irregular"] <= 50
    assert 27 <= counts["drifting"] <= 33
    assert 27 <= counts["gone"] <= 33
    assert 10 <= counts["returned"] <= 14
    assert 10 <= counts["new"] <= 25
    assert sum(counts.values()) == 300


def test_churn_ground_truth_only_for_lost_customers(data: DemoData) -> None:
    for customer in data.customers:
        lost = customer.archetype in ("drifting", "gone")
        assert (customer.churned_on is not None) == lost


# --- showcases ---------------------------------------------------------------------------


def test_wang_jie_showcase(data: DemoData) -> None:
    wang = by_name(data, "王姐")
    assert wang.archetype == "showcase"
    assert wang.kind == "household"
    assert "王丽" in wang.aliases
    assert wang.phone is not None and wang.address is not None
    orders = orders_by_customer(data)[wang.key]
    assert orders[-1].order_date == data.as_of - timedelta(days=38)
    assert orders[-1].order_date - orders[0].order_date > timedelta(days=365)
    gaps = intervals(orders)
    assert 23 <= statistics.median(gaps) <= 27
    assert all(23 <= g <= 27 for g in gaps)
    assert {o.quantity for o in orders} == {2}


def test_li_kuaiji_showcase(data: DemoData) -> None:
    li = by_name(data, "3号楼李会计")
    assert (li.archetype, li.kind, li.churned_on) == ("showcase", "office", None)
    orders = orders_by_customer(data)[li.key]
    assert (data.as_of - orders[-1].order_date).days <= 7
    assert {o.quantity for o in orders} == {5}
    assert 5 <= statistics.median(intervals(orders)) <= 9
    assert len(orders) > 50


def test_lao_zhang_showcase(data: DemoData) -> None:
    zhang = by_name(data, "老张")
    assert (zhang.archetype, zhang.kind, zhang.churned_on) == ("showcase", "household", None)
    orders = orders_by_customer(data)[zhang.key]
    assert 3 <= (data.as_of - orders[-1].order_date).days <= 10
    assert {o.quantity for o in orders} == {3}
    gaps = intervals(orders)
    assert statistics.pstdev(gaps) / statistics.mean(gaps) > 0.3  # irregular


# --- calendar and seasonality ------------------------------------------------------------


@pytest.mark.parametrize("year", [2023, 2024, 2025, 2026])
def test_spring_festival_table_matches_official_holidays(year: int) -> None:
    festival = spring_festival(year)
    assert chinese_calendar.is_holiday(festival)
    first, last = spring_festival_window(year)
    assert first < festival < last
    assert 10 <= (last - first).days + 1 <= 15


def test_offices_skip_weekends_and_spring_festival(data: DemoData) -> None:
    offices = {c.key for c in data.customers if c.kind == "office"}
    assert len(offices) >= 10
    office_orders = [o for o in data.orders if o.customer_key in offices]
    assert all(o.order_date.weekday() < 5 for o in office_orders)
    for order in office_orders:
        first, last = spring_festival_window(order.order_date.year)
        assert not first <= order.order_date <= last


def test_households_order_less_around_spring_festival(data: DemoData) -> None:
    households = {c.key for c in data.customers if c.kind == "household"}
    festival = spring_festival(data.as_of.year if data.as_of.month > 3 else data.as_of.year - 1)
    near = sum(
        1
        for o in data.orders
        if o.customer_key in households and abs((o.order_date - festival).days) <= 7
    )
    ordinary_start = festival + timedelta(days=60)  # spring: neither festival nor summer
    ordinary = sum(
        1
        for o in data.orders
        if o.customer_key in households
        and ordinary_start <= o.order_date <= ordinary_start + timedelta(days=14)
    )
    assert near < 0.8 * ordinary


def test_summer_intervals_shorter_for_regular_households(data: DemoData) -> None:
    grouped = orders_by_customer(data)
    summer: list[int] = []
    rest: list[int] = []
    for customer in data.customers:
        if customer.archetype != "regular" or customer.kind != "household":
            continue
        orders = grouped[customer.key]
        for before, gap in zip(orders, intervals(orders), strict=False):
            (summer if before.order_date.month in SUMMER_MONTHS else rest).append(gap)
    assert len(summer) > 100
    assert statistics.mean(summer) < 0.85 * statistics.mean(rest)


def test_regular_households_have_steadier_intervals_than_irregular(data: DemoData) -> None:
    grouped = orders_by_customer(data)

    def median_spread(archetype: str) -> float:
        spreads = []
        for c in of_archetype(data, archetype):
            gaps = intervals(grouped[c.key])
            if c.kind == "household" and len(gaps) >= 5:
                spreads.append(statistics.pstdev(gaps) / statistics.mean(gaps))
        return statistics.median(spreads)

    assert median_spread("regular") < median_spread("irregular")


# --- churn, drift, return, new -----------------------------------------------------------


def test_lost_customers_stop_on_churned_on(data: DemoData) -> None:
    grouped = orders_by_customer(data)
    for customer in of_archetype(data, "gone") + of_archetype(data, "drifting"):
        orders = grouped[customer.key]
        assert customer.churned_on == orders[-1].order_date
        assert all(o.order_date <= customer.churned_on for o in orders)
        assert customer.churned_on < data.as_of


def test_gone_customers_stopped_months_ago(data: DemoData) -> None:
    grouped = orders_by_customer(data)
    for customer in of_archetype(data, "gone"):
        assert customer.churned_on is not None
        assert (data.as_of - customer.churned_on).days >= 60
        assert len(grouped[customer.key]) >= 3


def test_drifting_customers_stretch_and_shrink(data: DemoData) -> None:
    grouped = orders_by_customer(data)
    early_gaps, late_gaps, early_qty, late_qty = [], [], [], []
    stretched = 0
    drifting = of_archetype(data, "drifting")
    for customer in drifting:
        orders = grouped[customer.key]
        gaps = intervals(orders)
        assert len(gaps) >= 4
        early = statistics.mean(gaps[: len(gaps) // 2])
        late = statistics.mean(gaps[-2:])
        early_gaps.append(early)
        late_gaps.append(late)
        stretched += late > early
        early_qty.append(statistics.mean(o.quantity for o in orders[: len(orders) // 2]))
        late_qty.append(orders[-1].quantity)
    assert sum(late_gaps) > 1.3 * sum(early_gaps)
    assert stretched >= 0.75 * len(drifting)
    assert sum(late_qty) < 0.8 * sum(early_qty)


def test_returned_customers_have_a_long_gap_then_come_back(data: DemoData) -> None:
    grouped = orders_by_customer(data)
    returned = of_archetype(data, "returned")
    assert returned
    for customer in returned:
        assert customer.churned_on is None
        orders = grouped[customer.key]
        gaps = intervals(orders)
        longest = max(gaps)
        assert 60 <= longest <= 140  # 2-4 months, a 春节 trip home may add a little
        after = len(gaps) - gaps.index(longest)  # orders after the gap
        assert after >= 2


def test_new_customers_have_one_or_two_recent_orders(data: DemoData) -> None:
    grouped = orders_by_customer(data)
    new = of_archetype(data, "new")
    assert new
    for customer in new:
        orders = grouped[customer.key]
        assert 1 <= len(orders) <= 2
        assert (data.as_of - orders[0].order_date).days <= 45  # offices skip weekends/春节


# --- arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n_customers", "months"), [(3, 18), (20, 6), (40, 2), (1000, 24)])
def test_other_sizes_work(n_customers: int, months: int) -> None:
    as_of = date(2026, 2, 25)  # right after 春节: the awkward case for the office showcase
    data = simulate_water_station(as_of=as_of, n_customers=n_customers, months=months)
    assert len(data.customers) == n_customers
    assert len({c.name for c in data.customers}) == n_customers
    assert all(months_before(as_of, months) <= o.order_date <= as_of for o in data.orders)
    wang = orders_by_customer(data)[by_name(data, "王姐").key]
    assert wang[-1].order_date == as_of - timedelta(days=38)


@pytest.mark.parametrize(("n_customers", "months"), [(2, 18), (300, 1)])
def test_invalid_arguments_are_rejected(n_customers: int, months: int) -> None:
    with pytest.raises(ValueError):
        simulate_water_station(as_of=date(2026, 11, 20), n_customers=n_customers, months=months)


def test_months_before_clamps_to_month_end() -> None:
    assert months_before(date(2026, 8, 31), 18) == date(2025, 2, 28)
    assert months_before(date(2026, 11, 20), 18) == date(2025, 5, 20)
    assert months_before(date(2025, 3, 1), 14) == date(2024, 1, 1)
