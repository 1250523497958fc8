"""Order history as arrays, reduced to per-customer figures. Pure numpy, no I/O.

One customer or a million go through the same code: rows are (customer index, epoch day,
quantity, amount); everything is computed per customer with sorted-segment reductions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.risk.season import EffectiveClock

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# A log-gap further than this from the customer's own mean is clipped (a one-off three-month
# trip must not redefine a weekly customer's rhythm): e^2 is seven times longer or shorter.
# Tighter clipping (e^1.1, three times) cut off ordinary variation of irregular buyers (a
# memoryless gap is over 3x its mean 5 % of the time and under 1/3 of it 28 %), understating
# their spread and making the model over-confident.
LOG_GAP_CLIP = 2.0


@dataclass(frozen=True)
class OrderArrays:
    """Orders as parallel arrays; `customer` indexes 0..n_customers-1."""

    customer: I64  # int32 is accepted too (big files use it to save memory)
    day: I64  # days since 1970-01-01, the shop's local calendar (int32 accepted)
    quantity: F64
    amount: F64
    n_customers: int

    def __post_init__(self) -> None:
        n = self.customer.shape[0]
        if not (self.day.shape[0] == self.quantity.shape[0] == self.amount.shape[0] == n):
            raise ValueError("order arrays must have the same length")
        if n and (self.customer.min() < 0 or self.customer.max() >= self.n_customers):
            raise ValueError("customer index out of range")

    @classmethod
    def from_lists(
        cls,
        customer: list[int],
        day: list[int],
        quantity: list[float] | None = None,
        amount: list[float] | None = None,
        n_customers: int | None = None,
    ) -> OrderArrays:
        n = len(customer)
        return cls(
            customer=np.asarray(customer, dtype=np.int64),
            day=np.asarray(day, dtype=np.int64),
            quantity=np.asarray(quantity if quantity is not None else [1.0] * n, dtype=np.float64),
            amount=np.asarray(amount if amount is not None else [0.0] * n, dtype=np.float64),
            n_customers=n_customers if n_customers is not None else (max(customer) + 1 if n else 0),
        )


@dataclass(frozen=True)
class CustomerFigures:
    """Per-customer figures from orders on or before as_of (arrays of length n_customers)."""

    n_days: I64  # distinct purchase days
    n_orders: I64
    first_day: I64  # -1 when no order
    last_day: I64
    total_quantity: F64
    total_amount: F64
    gap_count: I64  # gaps that inform the rhythm (n_days - 1 less any multi-year returns)
    log_gap_mean: F64  # mean of (clipped) log effective gaps; nan without gaps
    log_gap_var: F64  # their sample variance; nan with fewer than 2 gaps
    mean_gap_days: F64  # plain mean of calendar gaps (the owner's "average interval")
    last_gap_days: F64  # the most recent completed gap, calendar days; nan without gaps
    earlier_gap_mean: F64  # mean calendar gap before the last two; nan if too few
    last_quantity: F64  # quantity on the last purchase day; nan without orders
    recent_quantity: F64  # mean quantity of the last two purchase days
    earlier_quantity: F64  # mean quantity of the purchase days before those
    recent_amount: F64
    earlier_amount: F64


def _segment_sum(values: F64, starts: I64, size: int, owners: I64) -> F64:
    out = np.zeros(size)
    if values.size:
        out[owners] = np.add.reduceat(values, starts)
    return out


def reduce_history(
    orders: OrderArrays,
    *,
    as_of_day: int,
    clock: EffectiveClock,
    max_rhythm_gap: float = float("inf"),
) -> CustomerFigures:
    """Per-customer figures; same-day orders form one purchase day.

    Gaps longer than `max_rhythm_gap` effective days (a customer who left for years and came
    back) still count as orders but say nothing about the rhythm, so they are left out of it.
    """
    n = orders.n_customers
    # Memory matters at a million customers: no copies where a view will do, and every
    # order-sized temporary is dropped as soon as it has been reduced.
    keep = orders.day <= as_of_day
    if keep.all():
        customer, day, quantity, amount = (
            orders.customer,
            orders.day,
            orders.quantity,
            orders.amount,
        )
    else:
        customer, day = orders.customer[keep], orders.day[keep]
        quantity, amount = orders.quantity[keep], orders.amount[keep]
    del keep
    order_counts = np.bincount(customer, minlength=n).astype(np.int64)

    # Collapse to one row per (customer, day), sorted by customer then day.
    key = customer * np.int64(1 << 32) + (day - np.int64(-(1 << 31)))
    order = np.argsort(key)  # sums within a (customer, day) do not care about order
    key = key[order]
    if key.size:
        row_starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    else:
        row_starts = np.zeros(0, dtype=np.int64)
    del key
    first_rows = order[row_starts]
    p_customer, p_day = customer[first_rows], day[first_rows]
    del first_rows
    p_qty = np.add.reduceat(quantity[order], row_starts) if order.size else np.zeros(0)
    p_amt = np.add.reduceat(amount[order], row_starts) if order.size else np.zeros(0)
    del order, row_starts, customer, day, quantity, amount

    n_days = np.bincount(p_customer, minlength=n).astype(np.int64)
    seg_starts = (
        np.flatnonzero(np.concatenate(([True], p_customer[1:] != p_customer[:-1])))
        if p_customer.size
        else np.zeros(0, dtype=np.int64)
    )
    owners = p_customer[seg_starts]
    seg_ends = (
        np.concatenate((seg_starts[1:], [p_customer.size])) - 1
        if p_customer.size
        else np.zeros(0, dtype=np.int64)
    )

    first_day = np.full(n, -1, dtype=np.int64)
    last_day = np.full(n, -1, dtype=np.int64)
    first_day[owners] = p_day[seg_starts]
    last_day[owners] = p_day[seg_ends]
    total_quantity = _segment_sum(p_qty, seg_starts, n, owners)
    total_amount = _segment_sum(p_amt, seg_starts, n, owners)

    # Gaps between consecutive purchase days of the same customer.
    same = p_customer[1:] == p_customer[:-1] if p_customer.size else np.zeros(0, dtype=bool)
    gap_owner = p_customer[1:][same]
    cal_gap = np.diff(p_day)[same].astype(np.float64)
    effective = clock.at(p_day)
    eff_gap = np.diff(effective)[same]
    del effective, same
    all_gap_count = np.bincount(gap_owner, minlength=n).astype(np.int64)
    rhythmic = eff_gap <= max_rhythm_gap
    r_owner = gap_owner[rhythmic]
    log_gap = np.log(np.maximum(eff_gap[rhythmic], 0.5))
    del eff_gap, rhythmic
    gap_count = np.bincount(r_owner, minlength=n).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        raw_mean = np.bincount(r_owner, weights=log_gap, minlength=n) / gap_count
        centre = raw_mean[r_owner]
        np.clip(log_gap, centre - LOG_GAP_CLIP, centre + LOG_GAP_CLIP, out=log_gap)
        log_mean = np.bincount(r_owner, weights=log_gap, minlength=n) / gap_count
        np.subtract(log_gap, log_mean[r_owner], out=log_gap)
        np.square(log_gap, out=log_gap)
        log_var = np.bincount(r_owner, weights=log_gap, minlength=n) / (gap_count - 1)
        del centre, log_gap, r_owner
        mean_gap = np.bincount(gap_owner, weights=cal_gap, minlength=n) / all_gap_count
    log_var[gap_count < 2] = np.nan

    # Recent vs earlier behaviour, for the drop signals: the last two purchase days vs the rest.
    last_gap = np.full(n, np.nan)
    earlier_gap = np.full(n, np.nan)
    if gap_owner.size:
        gap_seg_last = np.flatnonzero(np.concatenate((gap_owner[1:] != gap_owner[:-1], [True])))
        last_gap[gap_owner[gap_seg_last]] = cal_gap[gap_seg_last]
        gap_sum = np.bincount(gap_owner, weights=cal_gap, minlength=n)
        prev = np.zeros(n)
        two_ago = gap_seg_last - 1
        ok = (two_ago >= 0) & (gap_owner[np.maximum(two_ago, 0)] == gap_owner[gap_seg_last])
        prev[gap_owner[gap_seg_last][ok]] = cal_gap[two_ago[ok]]
        with np.errstate(invalid="ignore", divide="ignore"):
            earlier_gap = (gap_sum - last_gap - prev) / (all_gap_count - 2)
        earlier_gap[all_gap_count < 4] = np.nan

    last_quantity = np.full(n, np.nan)
    recent_q, earlier_q = np.full(n, np.nan), np.full(n, np.nan)
    recent_a, earlier_a = np.full(n, np.nan), np.full(n, np.nan)
    if p_customer.size:
        last_q, last_a = np.zeros(n), np.zeros(n)
        last_q[owners], last_a[owners] = p_qty[seg_ends], p_amt[seg_ends]
        last_quantity[owners] = p_qty[seg_ends]
        prev_q, prev_a = np.zeros(n), np.zeros(n)
        multi = seg_ends > seg_starts
        prev_q[owners[multi]] = p_qty[seg_ends[multi] - 1]
        prev_a[owners[multi]] = p_amt[seg_ends[multi] - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            recent_q = (last_q + prev_q) / 2
            recent_a = (last_a + prev_a) / 2
            earlier_q = (total_quantity - last_q - prev_q) / (n_days - 2)
            earlier_a = (total_amount - last_a - prev_a) / (n_days - 2)
        few = n_days < 4
        recent_q[few], earlier_q[few], recent_a[few], earlier_a[few] = (
            np.nan,
            np.nan,
            np.nan,
            np.nan,
        )

    return CustomerFigures(
        n_days=n_days,
        n_orders=order_counts,
        first_day=first_day,
        last_day=last_day,
        total_quantity=total_quantity,
        total_amount=total_amount,
        gap_count=gap_count,
        log_gap_mean=np.where(gap_count > 0, log_mean, np.nan),
        log_gap_var=log_var,
        mean_gap_days=np.where(all_gap_count > 0, mean_gap, np.nan),
        last_gap_days=last_gap,
        earlier_gap_mean=earlier_gap,
        last_quantity=last_quantity,
        recent_quantity=recent_q,
        earlier_quantity=earlier_q,
        recent_amount=recent_a,
        earlier_amount=earlier_a,
    )
