"""Morning digest build time for a shop with 10,000 customers (target: < 1 s).

    python -m benchmarks.digest_bench [--customers 10000] [--runs 7] [--staff 3] [--seed 7]

1. Seeds a fresh SQLite file (WAL, as in production) with one water station simulated by
   the demo's own seeded simulator at the given size (about 28 orders per customer over 18
   months), inserted in bulk, then fitted and scored by `rescore_shop` exactly as the demo
   load does. A few delivery workers serve the customers round-robin, so the digest is split
   per person as in a real shop.
2. Makes it a normal morning: yesterday's digest is built and committed, and about a third
   of its items get a tapped outcome (sent / no reply / warm), so today's build reuses open
   follow-ups, reads real outreach history and reports yesterday's results.
3. Times, each run in its own write transaction that is then rolled back (so every run sees
   the same data; commit excluded):
   - baseline A: `due_customers` alone, the indexed "who is due today" query the plan starts
     from (the floor any digest pays);
   - baseline B: reading every customer summary of the shop (what a naive digest would scan);
   - `build_digest(persist=False)` (what `huitou digest --dry-run` does);
   - `build_digest(persist=True)`: plan, follow-up rows, signed links, every person's text.
   Then one last persisted build is committed, to show the commit's cost on top.
4. Prints the figures and a PASS/MISS line against the target (p50 and max of the persisted
   build).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert
from sqlmodel import Session, col, select

from app.clock import FixedClock
from app.config import PROJECT_ROOT, Settings
from app.customers.models import Customer, CustomerSummary
from app.customers.risk import rescore_shop
from app.customers.service import due_customers
from app.db import make_engine, read_session, upgrade, write_session
from app.demo.simulator import simulate_water_station
from app.digest.build import build_digest
from app.orders.models import Order
from app.outreach.models import FollowUp
from app.outreach.outcomes import record_outcome
from app.shops.models import Shop, Staff
from app.shops.service import create_shop

TODAY = date(2026, 6, 17)
TARGET_SECONDS = 1.0
# Yesterday's items that got a tapped outcome, cycling through these reactions.
TAPPED_SHARE = 3
TAPPED_OUTCOMES = ("sent", "none", "warm")


class _Rollback(Exception):
    """Raised inside a write session to undo a measured run."""


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def worst(self) -> float:
        return max(self.seconds)

    def line(self) -> str:
        return (
            f"  {self.name:<44} p50 {self.p50 * 1000:8.1f} ms   "
            f"max {self.worst * 1000:8.1f} ms   (n={len(self.seconds)})"
        )


def seed_shop(engine: Engine, clock: FixedClock, *, customers: int, staff: int, seed: int) -> Shop:
    """One simulated water station of `customers` customers, scored as the demo load does."""
    today = TODAY
    data = simulate_water_station(as_of=today, seed=seed, n_customers=customers)
    with write_session(engine) as session:
        shop = create_shop(
            session=session, name="基准水站", industry="water", clock=clock, slug="bench"
        )
        assert shop.id is not None
        tz = ZoneInfo(shop.timezone)
        now = clock.now()
        workers = [
            Staff(shop_id=shop.id, name=f"送水师傅{i + 1}", role="staff", created_at=now)
            for i in range(staff)
        ]
        session.add_all(workers)
        session.flush()
        worker_ids = [w.id for w in workers]
        rows = [
            {
                "shop_id": shop.id,
                "name": c.name,
                "aliases": list(c.aliases),
                "phone": c.phone,
                "address": c.address,
                "kind": c.kind,
                "value_class": "C",
                "tags": [],
                "status": "active",
                "assigned_staff_id": worker_ids[i % len(worker_ids)] if worker_ids else None,
                "created_at": now,
            }
            for i, c in enumerate(data.customers)
        ]
        session.execute(insert(Customer), rows)
        ids = dict(
            zip(
                (c.key for c in data.customers),
                session.exec(
                    select(Customer.id)
                    .where(Customer.shop_id == shop.id)
                    .order_by(col(Customer.id))
                ).all(),
                strict=True,
            )
        )
        session.execute(
            insert(Order),
            [
                {
                    "shop_id": shop.id,
                    "customer_id": ids[o.customer_key],
                    "ordered_at": datetime.combine(o.order_date, clock_time(o.hour), tzinfo=tz),
                    "order_date": o.order_date,
                    "quantity": o.quantity,
                    "unit": "桶",
                    "amount_cents": o.amount_cents,
                    "source": "demo",
                    "created_at": now,
                }
                for o in data.orders
            ],
        )
        rescore_shop(session=session, shop=shop, clock=clock)
        return shop


def make_yesterday(engine: Engine, shop: Shop, settings: Settings) -> tuple[int, int]:
    """Build and commit yesterday's digest and tap an outcome on a third of its items."""
    yesterday = TODAY - timedelta(days=1)
    clock = FixedClock.at_local(yesterday, hour=8)
    with write_session(engine) as session:
        own = session.get(Shop, shop.id)
        assert own is not None
        digest = build_digest(
            session=session, shop=own, day=yesterday, settings=settings, clock=clock, persist=True
        )
        ids = [line.followup_id for p in digest.people for line in p.lines if line.followup_id]
    tapped = 0
    clock = FixedClock.at_local(yesterday, hour=15)
    with write_session(engine) as session:
        own = session.get(Shop, shop.id)
        assert own is not None
        for n, followup_id in enumerate(ids[::TAPPED_SHARE]):
            followup = session.get(FollowUp, followup_id)
            assert followup is not None
            outcome = TAPPED_OUTCOMES[n % len(TAPPED_OUTCOMES)]
            record_outcome(
                session=session,
                shop=own,
                followup=followup,
                outcome=outcome,
                clock=clock,
                staff_id=followup.assigned_staff_id,
                source="link",
            )
            tapped += 1
    return len(ids), tapped


def _measure(
    engine: Engine, runs: int, work: Callable[[Session, Shop], Any], shop_id: int
) -> list[float]:
    """`runs` timings of `work` in a write transaction that is rolled back each time."""
    out: list[float] = []
    for _ in range(runs):
        try:
            with write_session(engine) as session:
                shop = session.get(Shop, shop_id)
                assert shop is not None
                start = time.perf_counter()
                work(session, shop)
                session.flush()
                out.append(time.perf_counter() - start)
                raise _Rollback
        except _Rollback:
            pass
    return out


def run(*, customers: int, runs: int, staff: int, seed: int, out: Callable[[str], None]) -> bool:
    """Seed, measure, print; True when the persisted build meets the target."""
    clock = FixedClock.at_local(TODAY, hour=8)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            database_url="",
            templates_dir=PROJECT_ROOT / "message_templates",
            scheduler_enabled=False,
            secret_key="benchmark-link-secret-0123456789abcdef",
        )
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        t0 = time.perf_counter()
        shop = seed_shop(engine, clock, customers=customers, staff=staff, seed=seed)
        seeded = time.perf_counter() - t0
        assert shop.id is not None
        t0 = time.perf_counter()
        yesterday_items, tapped = make_yesterday(engine, shop, settings)
        prepared = time.perf_counter() - t0
        with read_session(engine) as session:
            n_customers = session.exec(
                select(func.count()).select_from(Customer).where(Customer.shop_id == shop.id)
            ).one()
            n_orders = session.exec(
                select(func.count()).select_from(Order).where(Order.shop_id == shop.id)
            ).one()

        def due(session: Session, own: Shop) -> None:
            due_count[0] = len(due_customers(session=session, shop=own, today=TODAY))

        def summaries(session: Session, own: Shop) -> None:
            rows = session.exec(
                select(CustomerSummary).where(CustomerSummary.shop_id == own.id)
            ).all()
            summary_count[0] = len(rows)

        def preview(session: Session, own: Shop) -> None:
            build_digest(
                session=session, shop=own, day=TODAY, settings=settings, clock=clock, persist=False
            )

        def persisted(session: Session, own: Shop) -> None:
            build_digest(
                session=session, shop=own, day=TODAY, settings=settings, clock=clock, persist=True
            )

        due_count, summary_count = [0], [0]
        timings = [
            Timing("baseline A: due_customers query", _measure(engine, runs, due, shop.id)),
            Timing("baseline B: read all summaries", _measure(engine, runs, summaries, shop.id)),
            Timing(
                "build_digest(persist=False) (--dry-run)", _measure(engine, runs, preview, shop.id)
            ),
            Timing("build_digest(persist=True)", _measure(engine, runs, persisted, shop.id)),
        ]
        # Once more for real: the persisted build and its commit.
        start = time.perf_counter()
        with write_session(engine) as session:
            own = session.get(Shop, shop.id)
            assert own is not None
            committed = build_digest(
                session=session, shop=own, day=TODAY, settings=settings, clock=clock, persist=True
            )
        with_commit = time.perf_counter() - start
        with read_session(engine) as session:
            followups_today = session.exec(
                select(func.count())
                .select_from(FollowUp)
                .where(FollowUp.shop_id == shop.id, FollowUp.created_on == TODAY)
            ).one()
            reused = session.exec(
                select(func.count())
                .select_from(FollowUp)
                .where(
                    FollowUp.shop_id == shop.id,
                    FollowUp.created_on < TODAY,
                    col(FollowUp.status).in_(("open", "contacted")),
                )
            ).one()
        engine.dispose()

    digest = committed  # the rolled-back runs' objects are expired; this one was committed
    by_tier: dict[int, int] = {}
    for item in digest.items:
        by_tier[item.step.tier] = by_tier.get(item.step.tier, 0) + 1
    people = [(p.staff.name, len(p.lines), len(p.text)) for p in digest.people]
    build = timings[-1]
    out(
        f"digest build, one water station: {n_customers:,} customers, {n_orders:,} orders, "
        f"{staff} delivery workers + owner; as of {TODAY} (SQLite, {os.cpu_count()} CPUs)"
    )
    out(f"  seeded in {seeded:.1f} s; yesterday's digest: {yesterday_items} items, {tapped} tapped "
        f"(prepared in {prepared:.1f} s)")  # fmt: skip
    out(
        f"  due today (due_customers): {due_count[0]:,}; summaries read: {summary_count[0]:,}; "
        f"items on today's list: {len(digest.items):,} "
        f"(by tier {', '.join(f'{t}: {n}' for t, n in sorted(by_tier.items(), reverse=True))})"
    )
    out("  per person: " + "; ".join(f"{n} {k} items, {c} chars" for n, k, c in people))
    out(
        f"  follow-up rows: {followups_today:,} new today, "
        f"{reused:,} earlier ones still open or contacted"
    )
    out(f"  each run in a write transaction rolled back after it; {runs} runs each:")
    for timing in timings:
        out(timing.line())
    out(f"  {'build_digest(persist=True) + commit, once':<44} {with_commit * 1000:8.1f} ms "
        f"({len(committed.items):,} items)")  # fmt: skip
    out(
        f"  ratio build/baseline A: x{build.p50 / timings[0].p50:.1f}; "
        f"build/baseline B: x{build.p50 / timings[1].p50:.1f}"
    )
    ok = build.worst < TARGET_SECONDS and with_commit < TARGET_SECONDS
    out(
        f"{'PASS' if ok else 'MISS'}: digest build for {n_customers:,} customers "
        f"p50 {build.p50:.3f} s, max {build.worst:.3f} s, with commit {with_commit:.3f} s "
        f"(target < {TARGET_SECONDS:.0f} s)"
    )
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--staff", type=int, default=3, help="delivery workers besides the owner")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--strict", action="store_true", help="exit 1 on a MISS")
    args = ap.parse_args(argv)
    ok = run(customers=args.customers, runs=args.runs, staff=args.staff, seed=args.seed, out=print)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
