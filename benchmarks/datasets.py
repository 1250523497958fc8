"""Benchmark data: CDNOW (real, shipped with ``lifetimes``) and simulated water stations.

Everything is held as flat numpy arrays (``Orders``), the same fields as the engine's
``app.risk.batch.OrderArrays``: ``customer`` (0..n-1), ``day`` (days since 1970-01-01),
``quantity``, ``amount`` and ``n_customers``.

Labels (both datasets), for a cutoff day C and a horizon H (90 days):
- eligible: the customer has at least 2 distinct purchase days on or before C;
- label 1 ("churned"): no purchase on any day in (C, C + H], i.e. C excluded, C + H included;
- features may use only orders with day <= C (``truncate``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

EPOCH = date(1970, 1, 1)
HORIZON_DAYS = 90

CDNOW_CUTOFFS: tuple[date, ...] = (date(1997, 9, 30), date(1997, 12, 31), date(1998, 3, 31))


def to_day(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


def from_day(day: int) -> date:
    """Inverse of ``to_day``."""
    return EPOCH + timedelta(days=int(day))


@dataclass
class Orders:
    """Orders as flat arrays; same fields as the engine's ``OrderArrays`` (plus optional ids)."""

    customer: np.ndarray  # int64, 0..n_customers-1
    day: np.ndarray  # int32, days since 1970-01-01
    quantity: np.ndarray  # float64
    amount: np.ndarray  # float64
    n_customers: int
    customer_ids: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.customer = np.asarray(self.customer, dtype=np.int64)
        self.day = np.asarray(self.day, dtype=np.int32)
        self.quantity = np.asarray(self.quantity, dtype=np.float64)
        self.amount = np.asarray(self.amount, dtype=np.float64)
        n = len(self.customer)
        if not (len(self.day) == len(self.quantity) == len(self.amount) == n):
            raise ValueError("order arrays must have the same length")
        if n and (self.customer.min() < 0 or self.customer.max() >= self.n_customers):
            raise ValueError("customer index out of range")

    def __len__(self) -> int:
        return len(self.customer)

    def select(self, mask: np.ndarray) -> Orders:
        """Keep the orders where ``mask`` is true (customer indexing unchanged)."""
        return Orders(
            self.customer[mask],
            self.day[mask],
            self.quantity[mask],
            self.amount[mask],
            self.n_customers,
            self.customer_ids,
        )

    def customers_subset(self, keep: np.ndarray) -> Orders:
        """Orders of the customers in boolean ``keep`` (len n_customers), re-indexed 0..k-1."""
        new_index = np.full(self.n_customers, -1, dtype=np.int64)
        new_index[keep] = np.arange(int(keep.sum()))
        mask = keep[self.customer]
        ids = self.customer_ids[keep] if self.customer_ids is not None else None
        return Orders(
            new_index[self.customer[mask]],
            self.day[mask],
            self.quantity[mask],
            self.amount[mask],
            int(keep.sum()),
            ids,
        )


def concat_orders(parts: list[Orders]) -> tuple[Orders, np.ndarray]:
    """Concatenate order sets with disjoint customers; returns (orders, part index per customer)."""
    offset = 0
    cust, day, qty, amt, part = [], [], [], [], []
    for i, p in enumerate(parts):
        cust.append(p.customer + offset)
        day.append(p.day)
        qty.append(p.quantity)
        amt.append(p.amount)
        part.append(np.full(p.n_customers, i, dtype=np.int64))
        offset += p.n_customers
    orders = Orders(
        np.concatenate(cust),
        np.concatenate(day),
        np.concatenate(qty),
        np.concatenate(amt),
        offset,
    )
    return orders, np.concatenate(part)


# --- labels --------------------------------------------------------------------------------


def truncate(orders: Orders, cutoff: date) -> Orders:
    """Only the orders on or before ``cutoff`` (what a model may see at the cutoff)."""
    return orders.select(orders.day <= to_day(cutoff))


def distinct_days_per_customer(orders: Orders) -> np.ndarray:
    """Number of distinct purchase days per customer (0 for customers without orders)."""
    if len(orders) == 0:
        return np.zeros(orders.n_customers, dtype=np.int64)
    key = np.unique(orders.customer * 100_000 + (orders.day.astype(np.int64) + 30_000))
    return np.bincount(key // 100_000, minlength=orders.n_customers)


def make_labels(
    orders: Orders, cutoff: date, horizon_days: int = HORIZON_DAYS
) -> tuple[np.ndarray, np.ndarray]:
    """Return (eligible, label) boolean arrays over customers for ``cutoff``.

    eligible: >= 2 distinct purchase days on or before the cutoff.
    label: True when the customer has no purchase in (cutoff, cutoff + horizon_days].
    """
    c = to_day(cutoff)
    eligible = distinct_days_per_customer(orders.select(orders.day <= c)) >= 2
    future = (orders.day > c) & (orders.day <= c + horizon_days)
    bought = np.bincount(orders.customer[future], minlength=orders.n_customers) > 0
    return eligible, ~bought


# --- CDNOW ---------------------------------------------------------------------------------


def lifetimes_dataset_path(name: str) -> Path:
    """Path of a data file shipped inside the installed ``lifetimes`` package."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        raise RuntimeError("the lifetimes package is not installed (pip install -e .[bench])")
    return Path(spec.origin).parent / "datasets" / name


def _yyyymmdd_to_day(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.int64)
    years = (v // 10000 - 1970).astype("timedelta64[Y]")
    months = (v // 100 % 100 - 1).astype("timedelta64[M]")
    month_start = (np.datetime64("1970", "Y") + years).astype("datetime64[M]") + months
    days = month_start.astype("datetime64[D]") + (v % 100 - 1).astype("timedelta64[D]")
    return days.astype(np.int64).astype(np.int32)


def load_cdnow(path: Path | None = None) -> Orders:
    """Read CDNOW_master.txt (whitespace-separated id, YYYYMMDD, quantity, amount).

    Returns orders sorted by (customer, day), ``customer`` 0..n-1 and the original
    ids in ``customer_ids``. 23,570 customers, 69,659 transactions, 1997-01..1998-06.
    """
    raw = (path or lifetimes_dataset_path("CDNOW_master.txt")).read_bytes()
    header_end = raw.index(b"\n") + 1
    table = np.array(raw[header_end:].split(), dtype=np.float64).reshape(-1, 4)
    ids_raw = table[:, 0].astype(np.int64)
    ids, customer = np.unique(ids_raw, return_inverse=True)
    day = _yyyymmdd_to_day(table[:, 1])
    order = np.lexsort((day, customer))
    return Orders(
        customer[order],
        day[order],
        table[order, 2],
        table[order, 3],
        len(ids),
        ids,
    )


def load_cdnow_sample_ids(path: Path | None = None) -> np.ndarray:
    """Master ids of the 2,357-customer CDNOW sample, in sample-id order (1..2357).

    CDNOW_sample.txt has columns master id, sample id, date, quantity, amount; the
    published summary (cdnow_customers_summary.csv) is in sample-id order.
    """
    raw = (path or lifetimes_dataset_path("CDNOW_sample.txt")).read_bytes()
    table = np.array(raw.split(), dtype=np.float64).reshape(-1, 5)
    pairs = np.unique(table[:, [1, 0]].astype(np.int64), axis=0)
    return pairs[:, 1]


# --- simulated water stations ----------------------------------------------------------------


@dataclass
class SimulatedShops:
    """Several simulated water stations concatenated; per-customer arrays are len n_customers."""

    orders: Orders
    shop: np.ndarray  # shop index per customer
    as_of: list[date]  # per shop
    archetype: np.ndarray  # str per customer
    kind: np.ndarray  # "household" / "office" per customer
    churned_on: np.ndarray  # int32 day of the ground-truth churn (-1: never churned)

    @property
    def n_shops(self) -> int:
        return len(self.as_of)

    def shop_orders(self, shop: int) -> tuple[Orders, np.ndarray]:
        """One shop's orders re-indexed 0..k-1, and the global indices of its customers."""
        keep = self.shop == shop
        return self.orders.customers_subset(keep), np.flatnonzero(keep)

    def cutoffs(self, shop: int, n_cutoffs: int, step_days: int = 60) -> list[date]:
        """Cutoffs as_of - 90 - k*step for k = 0..n_cutoffs-1 (label window ends by as_of)."""
        end = self.as_of[shop]
        return [end - timedelta(days=HORIZON_DAYS + k * step_days) for k in range(n_cutoffs)]


# as_of dates chosen so that the cutoffs (as_of - 90 - k*60) fall in every season, including
# just before / during the Spring Festival and in summer.
_SIM_AS_OF: tuple[date, ...] = (
    date(2025, 4, 20),  # cutoffs 2025-01-20 (just before 春节 2025-01-29), 2024-11-21, ...
    date(2025, 10, 15),  # cutoffs 2025-07-17 (summer), 2025-05-18, ...
    date(2026, 5, 10),  # cutoffs 2026-02-09 (春节 2026-02-17 window), 2025-12-11, ...
    date(2025, 12, 1),  # cutoffs 2025-09-02, 2025-07-04 (summer), ...
    date(2024, 5, 5),  # cutoffs 2024-02-05 (春节 2024-02-10), ...
    date(2025, 8, 25),  # cutoffs 2025-05-27, 2025-03-28, 2025-01-27 (春节) ...
    date(2026, 3, 1),  # cutoffs 2025-12-01, 2025-10-02 ...
    date(2024, 11, 10),  # cutoffs 2024-08-12 (summer), 2024-06-13 ...
)


def simulated_water_stations(
    n_shops: int = 8,
    customers_per_shop: int = 300,
    seed: int = 2024,
    months: int | Sequence[int] = (30, 14),
) -> SimulatedShops:
    """Simulate ``n_shops`` water stations with different seeds and as_of dates.

    ``months`` of history per shop, cycled over the shops: the default alternates
    established shops (30 months) with young ones (14 months), so that at the earliest
    cutoffs of a young shop many customers have only 2-5 orders.
    """
    months_cycle = [months] if isinstance(months, int) else list(months)
    from app.demo.simulator import simulate_water_station

    parts: list[Orders] = []
    as_of: list[date] = []
    archetype: list[str] = []
    kind: list[str] = []
    churned: list[int] = []
    for s in range(n_shops):
        end = _SIM_AS_OF[s % len(_SIM_AS_OF)] + timedelta(days=365 * (s // len(_SIM_AS_OF)))
        data = simulate_water_station(
            as_of=end,
            seed=seed + 7919 * s,
            n_customers=customers_per_shop,
            months=months_cycle[s % len(months_cycle)],
        )
        index = {c.key: i for i, c in enumerate(data.customers)}
        cust = np.fromiter((index[o.customer_key] for o in data.orders), dtype=np.int64)
        day = np.fromiter((to_day(o.order_date) for o in data.orders), dtype=np.int32)
        qty = np.fromiter((o.quantity for o in data.orders), dtype=np.float64)
        amt = np.fromiter((o.amount_cents / 100.0 for o in data.orders), dtype=np.float64)
        order = np.lexsort((day, cust))
        parts.append(Orders(cust[order], day[order], qty[order], amt[order], len(data.customers)))
        as_of.append(end)
        for c in data.customers:
            archetype.append(c.archetype)
            kind.append(c.kind)
            churned.append(-1 if c.churned_on is None else to_day(c.churned_on))
    orders, shop = concat_orders(parts)
    return SimulatedShops(
        orders=orders,
        shop=shop,
        as_of=as_of,
        archetype=np.array(archetype),
        kind=np.array(kind),
        churned_on=np.array(churned, dtype=np.int32),
    )


ScoreFn = Callable[[Orders, date], np.ndarray]


def score_by_shop(model: ScoreFn, shops: SimulatedShops, as_of: date | list[date]) -> np.ndarray:
    """Score every customer, fitting/scoring ``model`` separately per shop (as in production).

    ``as_of`` is one date for all shops or one per shop; each shop sees only its own orders
    on or before its as_of.
    """
    out = np.full(shops.orders.n_customers, np.nan)
    for s in range(shops.n_shops):
        when = as_of[s] if isinstance(as_of, list) else as_of
        sub, idx = shops.shop_orders(s)
        out[idx] = model(truncate(sub, when), when)
    return out
