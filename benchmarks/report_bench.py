"""Monthly report build time for a shop with 10,000 customers (target: < 1 s).

    python -m benchmarks.report_bench [--customers 10000] [--runs 5] [--naive-runs 1] [--seed 7]

1. Seeds a fresh SQLite file with the digest benchmark's simulated water station (about 28
   orders per customer over 18 months, scored by `rescore_shop`) and yesterday's committed
   digest with a third of it tapped (benchmarks/digest_bench.py).
2. Adds a year of the owner's records in bulk: ~6 % of customers marked lost on a random
   day of the last 13 months (a fifth of them moved/closed), a sixth of those marked
   recovered later, and ~15 % of customers with a follow-up this month (tiers 1-3, a
   warning day, a first contact within 0-96 h for most, outcomes, offer costs).
3. Times, each run in its own read transaction:
   - baseline A: `month_summary`, what 本月统计 computed before the full report;
   - baseline B: the naive way — per customer, read their orders, marks and follow-ups
     and count in Python (same churn trend, win-back and money figures);
   - `build_report` (all figures, weekly list included);
   - `build_report` + the chat picture (`report_png`), i.e. 统计图;
   - the dashboard's five charts (`chart_png`) for an already built report.
4. Prints the figures, the ratios against the baselines, and PASS/MISS for `build_report`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert
from sqlmodel import Session, col, select

from app.clock import FixedClock, from_utc
from app.config import PROJECT_ROOT, Settings
from app.customers.models import Customer, CustomerSummary
from app.customers.risk import risk_config
from app.db import make_engine, read_session, upgrade, write_session
from app.events.models import Event
from app.orders.models import Order
from app.outreach.models import FollowUp
from app.outreach.tiers import TEMPLATES
from app.reports.charts import DASHBOARD_CHARTS, chart_png, report_png
from app.reports.losses import judged_losses, owner_marks, walk
from app.reports.metrics import build_report
from app.reports.monthly import month_of, month_summary
from app.reports.wording import report_labels
from app.shops.models import Shop
from benchmarks.digest_bench import TODAY, make_yesterday, seed_shop

TARGET_SECONDS = 1.0
LOST_SHARE = 0.06
FOLLOWUP_SHARE = 0.15
REASONS = ("价格", "服务不及时", "水质", "竞争对手", "搬家/倒闭", "其他")


def timing_line(name: str, seconds: list[float]) -> str:
    return (
        f"  {name:<46} p50 {statistics.median(seconds) * 1000:8.1f} ms   "
        f"max {max(seconds) * 1000:8.1f} ms   (n={len(seconds)})"
    )


def add_records(engine: Engine, shop: Shop, *, seed: int) -> tuple[int, int, int]:
    """A year of lost/recovered marks and this month's follow-ups, inserted in bulk."""
    assert shop.id is not None
    rng = random.Random(seed)
    tz = ZoneInfo(shop.timezone)
    first = month_of(TODAY)
    with write_session(engine) as session:
        ids = list(session.exec(select(Customer.id).where(Customer.shop_id == shop.id)))
        lost = rng.sample(ids, int(len(ids) * LOST_SHARE))
        events: list[dict[str, Any]] = []
        for cid in lost:
            day = TODAY - timedelta(days=rng.randrange(0, 395))
            reason = "搬家/倒闭" if rng.random() < 0.2 else rng.choice(REASONS[:4] + REASONS[5:])
            moment = datetime.combine(day, clock_time(rng.randrange(8, 20)), tzinfo=tz)
            events.append(
                {
                    "shop_id": shop.id,
                    "customer_id": cid,
                    "kind": "outcome",
                    "occurred_at": moment,
                    "data": {
                        "outcome": "lost",
                        "reason": reason,
                        "unavoidable": reason == "搬家/倒闭",
                    },
                    "source": "chat",
                }
            )
            if rng.random() < 1 / 6 and day < TODAY - timedelta(days=1):
                back = moment + timedelta(days=rng.randrange(1, max(2, (TODAY - day).days)))
                events.append(
                    {
                        "shop_id": shop.id,
                        "customer_id": cid,
                        "kind": "outcome",
                        "occurred_at": back,
                        "data": {"outcome": "recovered"},
                        "source": "chat",
                    }
                )
        session.execute(insert(Event), events)
        followups: list[dict[str, Any]] = []
        for cid in rng.sample(ids, int(len(ids) * FOLLOWUP_SHARE)):
            # Up to the day before yesterday: yesterday's digest holds rows for 6/16.
            created = first + timedelta(days=rng.randrange(0, (TODAY - first).days - 1))
            warning = created - timedelta(days=rng.randrange(0, 4))
            tier = rng.choice((1, 1, 1, 2, 2, 3))
            contact = None
            outcome = None
            if rng.random() < 0.7:
                start = datetime.combine(warning, clock_time(0), tzinfo=tz)
                contact = start + timedelta(hours=rng.randrange(8, 96))
                outcome = rng.choice(("sent", "none", "warm", "recovered", "lost"))
            followups.append(
                {
                    "shop_id": shop.id,
                    "customer_id": cid,
                    "tier": tier,
                    "kind": {1: "message", 2: "call", 3: "visit"}[tier],
                    "template": TEMPLATES[tier],
                    "reason_code": "interval_stretch",
                    "owner_role": "owner",
                    "due_on": created,
                    "created_on": created,
                    "warning_on": warning,
                    "status": "closed" if outcome in ("recovered", "lost") else "open",
                    "outcome": outcome,
                    "outcome_reason": rng.choice(("price", "competitor", None))
                    if outcome == "lost"
                    else None,
                    "cost_cents": rng.randrange(1000, 5000, 100) if tier == 3 and contact else 0,
                    "first_contact_at": contact,
                    "outcome_at": contact + timedelta(days=1) if contact else None,
                    "created_at": datetime.combine(created, clock_time(8), tzinfo=tz),
                }
            )
        session.execute(insert(FollowUp), followups)
    return len(lost), len(events) - len(lost), len(followups)


def naive_report(session: Session, shop: Shop, first_day: date, today: date) -> dict[str, Any]:
    """The same churn trend, win-back and money figures, one customer at a time (each
    customer's losses and returns by the same per-customer rules, app/reports/losses.py)."""
    tz = ZoneInfo(shop.timezone)
    config = risk_config(shop)
    months = [month_of(first_day, back) for back in range(11, -1, -1)]
    at_start = [0] * 12
    lost = [0] * 12
    contacted: dict[int, list[int]] = {}
    cost = revenue = 0
    start = datetime.combine(first_day, clock_time(0), tzinfo=tz).astimezone(UTC)
    for cid in session.exec(select(Customer.id).where(Customer.shop_id == shop.id)):
        assert cid is not None
        orders = session.exec(
            select(Order.order_date, Order.amount_cents).where(Order.customer_id == cid)
        ).all()
        rows = session.exec(
            select(Event.id, Event.customer_id, Event.occurred_at, Event.data)
            .where(Event.customer_id == cid, Event.kind == "outcome")
            .order_by(col(Event.occurred_at))
        ).all()
        summary = session.get(CustomerSummary, cid)
        days = sorted(d for d, _ in orders)
        lost_on = summary.lost_on if summary is not None else None
        judged = list(judged_losses(days, config, lost_on, today))
        changes = walk(cid, days, judged, owner_marks(rows, tz), tz)
        first_order = days[0] if days else None
        for i, month in enumerate(months):
            before = [m.outcome for m in changes if m.day < month]
            if (
                first_order is not None
                and first_order < month
                and (not before or before[-1] != "lost")
            ):
                at_start[i] += 1
            inside = [m.outcome for m in changes if month <= m.day < month_of(month, -1)]
            lost[i] += bool(inside) and inside[-1] == "lost"
        for f in session.exec(select(FollowUp).where(FollowUp.customer_id == cid)):
            if f.tier > 0 and f.first_contact_at and from_utc(f.first_contact_at) >= start:
                contacted.setdefault(f.tier, [0, 0])[0] += 1
                if f.outcome == "recovered":
                    contacted[f.tier][1] += 1
                    back = from_utc(f.outcome_at or f.first_contact_at).astimezone(tz).date()
                    revenue += sum(a or 0 for d, a in orders if back <= d < back + timedelta(90))
                cost += f.cost_cents
    return {
        "at_start": at_start,
        "lost": lost,
        "tiers": contacted,
        "cost": cost,
        "revenue": revenue,
    }


def _measure(engine: Engine, runs: int, shop_id: int, work: Callable[[Session, Shop], Any]) -> Any:
    seconds: list[float] = []
    result: Any = None
    for _ in range(runs):
        with read_session(engine) as session:
            shop = session.get(Shop, shop_id)
            assert shop is not None
            begin = time.perf_counter()
            result = work(session, shop)
            seconds.append(time.perf_counter() - begin)
    return seconds, result


def run(
    *, customers: int, runs: int, naive_runs: int, seed: int, out: Callable[[str], None]
) -> bool:
    """Seed, measure, print; True when the report build meets the target."""
    clock = FixedClock.at_local(TODAY, hour=10)
    first = month_of(TODAY)
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
        shop = seed_shop(engine, clock, customers=customers, staff=2, seed=seed)
        assert shop.id is not None
        make_yesterday(engine, shop, settings)
        marked, recovered, followups = add_records(engine, shop, seed=seed)
        seeded = time.perf_counter() - t0
        with read_session(engine) as session:
            n_orders = session.exec(
                select(func.count()).select_from(Order).where(Order.shop_id == shop.id)
            ).one()

        summary_s, _ = _measure(
            engine,
            runs,
            shop.id,
            lambda s, sh: month_summary(session=s, shop=sh, first_day=first, today=TODAY),
        )
        naive_s, naive = _measure(
            engine, naive_runs, shop.id, lambda s, sh: naive_report(s, sh, first, TODAY)
        )
        report_s, report = _measure(
            engine,
            runs,
            shop.id,
            lambda s, sh: build_report(session=s, shop=sh, first_day=first, clock=clock),
        )
        labels = report_labels(settings.templates_dir, shop)
        report_png(report, labels)  # the first drawing imports matplotlib and loads the font

        def picture(s: Session, sh: Shop) -> int:
            built = build_report(session=s, shop=sh, first_day=first, clock=clock)
            return len(report_png(built, labels))

        picture_s, png_bytes = _measure(engine, runs, shop.id, picture)
        dashboard_s: list[float] = []
        for _ in range(runs):
            begin = time.perf_counter()
            for name in DASHBOARD_CHARTS:
                chart_png(report, labels, name)
            dashboard_s.append(time.perf_counter() - begin)
        engine.dispose()

    month = report.month
    out(
        f"monthly report, one water station: {customers:,} customers, {n_orders:,} orders; "
        f"as of {TODAY} (SQLite, {os.cpu_count()} CPUs)"
    )
    out(
        f"  seeded in {seeded:.1f} s: {marked:,} lost marks, {recovered:,} recovered marks, "
        f"{followups:,} follow-ups this month"
    )
    out(
        f"  June: churn {month.lost:,} / {month.customers_at_start:,} = "
        f"{(month.churn_rate or 0) * 100:.2f}% ({month.lost_unavoidable} moved/closed); "
        f"warnings {report.process.warnings:,}, within 48 h {report.process.within_48h:,}; "
        f"contacted {sum(w.contacted for w in report.by_tier):,}, "
        f"won back {sum(w.recovered for w in report.by_tier):,}; "
        f"cost {report.money.offer_cost_cents / 100:,.0f} yuan, "
        f"revenue {report.money.revenue_recovered_cents / 100:,.0f} yuan"
    )
    agree = (
        naive["at_start"] == [m.customers_at_start for m in report.trend]
        and naive["lost"] == [m.lost for m in report.trend]
        and naive["cost"] == report.money.offer_cost_cents
        and {str(t): v for t, v in naive["tiers"].items()}
        == {w.key: [w.contacted, w.recovered] for w in report.by_tier}
    )
    out(f"  naive per-customer figures agree with build_report: {'yes' if agree else 'NO'}")
    out(f"  each run in its own read transaction; chat picture {png_bytes:,} bytes:")
    out(timing_line("baseline A: month_summary (old 本月统计)", summary_s))
    out(timing_line("baseline B: naive per-customer report", naive_s))
    out(timing_line("build_report (all figures + weekly list)", report_s))
    out(timing_line("build_report + report_png (统计图)", picture_s))
    out(timing_line("dashboard: 5 chart_png for a built report", dashboard_s))
    p50 = statistics.median(report_s)
    out(
        f"  ratio build_report/baseline A: x{p50 / statistics.median(summary_s):.1f}; "
        f"baseline B/build_report: x{statistics.median(naive_s) / p50:.1f}"
    )
    ok = max(report_s) < TARGET_SECONDS
    out(
        f"{'PASS' if ok else 'MISS'}: monthly report for {customers:,} customers "
        f"p50 {p50:.3f} s, max {max(report_s):.3f} s (target < {TARGET_SECONDS:.0f} s)"
    )
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--naive-runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--strict", action="store_true", help="exit 1 on a MISS")
    args = ap.parse_args(argv)
    ok = run(
        customers=args.customers,
        runs=args.runs,
        naive_runs=args.naive_runs,
        seed=args.seed,
        out=print,
    )
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
