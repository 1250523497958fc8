"""Every shop's morning digest at scale: PostgreSQL, two app processes, a fake push API.

    python -m benchmarks.scale_digest                 # 2,000 shops, 1M customers, ~15M orders
    python -m benchmarks.scale_digest --shops 50 --customers 20000
    python -m benchmarks.scale_digest --pg-dir /var/tmp/huitou-scale --keep   # keep the data
    python -m benchmarks.scale_digest --pg-dir /var/tmp/huitou-scale --reuse  # measure again

Target (issue 8): every shop's digest built and handed to the push API within 10 minutes,
each exactly once.

1. Database. A throwaway PostgreSQL cluster (benchmarks/_pg.py: initdb/pg_ctl as
   scripts/pg-start does) in --pg-dir (default: a temporary directory, removed at the end
   unless --keep), or the server of --database-url / HUITOU_DATABASE_URL. Migrated with
   app.db.upgrade.
2. Data (setup, timed separately, not the measured part). N shops with a size mix (many
   shops of 100-300 customers, some of 1k-3k, a few of ~10k; scaled to --customers), an
   owner and 0-3 workers each, ~--orders-per-customer orders per customer from numpy (each
   customer has a rhythm; most are regular, some drifting away, some gone). Summaries are
   computed by the real engine exactly as `rescore_shop` does (priors fitted on the shop's
   orders with `score_arrays`, then every customer scored with them; priors stored on the
   shop, value classes A/B/C), and everything goes in with COPY, shop by shop in chunks, so
   memory stays flat. The generated database is the template; each measured run works on a
   fresh copy (CREATE DATABASE ... TEMPLATE), so --reuse measures the same data again.
3. Measured run. A fake push API on loopback records every push and its Idempotency-Key.
   --processes (default 2) real `huitou serve` processes start with the scheduler on and
   HUITOU_PUSH_WEBHOOK_URL at the fake; HUITOU_TODAY is the data's day and
   HUITOU_DIGEST_TIME=00:00, so whatever the wall-clock hour, every shop's digest time has
   passed "today" and the start-up catch-up sends them all. Wall time runs from starting
   the processes until every shop's digest_run is 'sent' (polled).
4. Checks and figures: one push per (shop, staff, day) key and none twice, one run per shop,
   every delivery sent; per-process share, pushes/s, per-shop run time p50/p99/max, peak RSS
   and CPU of the app processes; a baseline in the same run (one SELECT of every shop's due
   customers) and the ratio; PASS/MISS against the target. --compare-processes K repeats the
   run on a fresh copy with K processes and prints the speed-up.

Exit status: 0 PASS, 2 MISS (exactly once held, too slow), 1 exactly-once broken or error.
"""

from __future__ import annotations

from benchmarks._blas import PINNED_BY_US  # first: before numpy loads

# isort: split
import argparse
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from sqlalchemy.engine import make_url

from app.config import PROJECT_ROOT
from app.customers.risk import PRIORS_KEY, _summary_values
from app.db import make_engine, upgrade
from app.risk.assess import assessment_at
from app.risk.batch import score_arrays
from app.risk.config import RiskConfig
from app.risk.events import customer_facts, facts_array
from app.risk.history import OrderArrays
from app.risk.season import epoch_day, from_epoch_day
from app.shops.service import INDUSTRY_DEFAULTS, LOCAL_OWNER_ID
from benchmarks._pg import Cluster, PgUnavailable, free_port

TARGET_SECONDS = 600.0
DEFAULT_DAY = date(2026, 6, 17)
TZ = "Asia/Shanghai"
META_TABLE = "bench_scale_meta"
# Rows buffered before a COPY round (orders dominate): bounds the generator's memory.
CHUNK_ORDERS = 400_000
BIG_TABLES = ("orders", "customer", "customer_summary")

# Size tiers: (share of shops, low, high, log-uniform?) before scaling to --customers.
SIZE_TIERS = ((0.85, 100, 300, False), (0.14, 1_000, 3_000, True), (0.01, 8_000, 12_000, False))
INDUSTRY_MIX = (("water", 0.6), ("retail", 0.25), ("car", 0.15))
# Median days between orders and the spread of customers' rhythms around it.
RHYTHM = {"water": (18.0, 0.45), "retail": (12.0, 0.5), "car": (75.0, 0.4)}
# Regular / drifting away (1.4-3x their interval since the last order) / gone (3x and more).
CUSTOMER_MIX = (0.75, 0.12, 0.13)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡"
SUFFIXES = ("姐", "哥", "阿姨", "叔", "师傅", "老板", "会计", "老师", "医生", "大爷", "奶奶", "总")
WORKER_NAMES = ("小周", "老孙", "小李", "阿强", "小王", "老马")


# -- parameters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    shops: int
    customers: int
    orders_per_customer: float
    seed: int
    day: date

    def to_meta(self) -> dict[str, Any]:
        return {**asdict(self), "day": self.day.isoformat()}


def shop_sizes(n_shops: int, n_customers: int, rng: np.random.Generator) -> np.ndarray:
    """Customers per shop: the tier mix, scaled so the total is exactly n_customers."""
    if n_customers < n_shops:
        raise ValueError("need at least one customer per shop")
    counts = [round(share * n_shops) for share, *_ in SIZE_TIERS]
    if n_shops >= 100 and counts[2] == 0:
        counts[2] = 1  # at least one big shop: the slowest digest is part of the figure
    counts[0] = n_shops - counts[1] - counts[2]
    raw: list[np.ndarray] = []
    for count, (_share, low, high, log) in zip(counts, SIZE_TIERS, strict=True):
        if log:
            raw.append(np.exp(rng.uniform(math.log(low), math.log(high), count)))
        else:
            raw.append(rng.uniform(low, high, count))
    sizes = np.concatenate(raw)
    rng.shuffle(sizes)
    sizes = np.maximum(1, np.floor(sizes * n_customers / sizes.sum())).astype(np.int64)
    # Hand out the rounding remainder (or take it back) one customer per shop.
    diff = n_customers - int(sizes.sum())
    order = np.argsort(-sizes, kind="stable")
    i = 0
    while diff != 0:
        j = order[i % n_shops]
        if diff > 0:
            sizes[j] += 1
            diff -= 1
        elif sizes[j] > 1:
            sizes[j] -= 1
            diff += 1
        i += 1
    return sizes


# -- COPY text format -----------------------------------------------------------------------


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def cell(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return "\\N" if math.isnan(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return _esc(json.dumps(value, ensure_ascii=False))
    return _esc(str(value))


def line(values: Iterable[Any]) -> str:
    return "\t".join(cell(v) for v in values) + "\n"


# -- one shop -------------------------------------------------------------------------------

SUMMARY_FIELDS = (
    "first_order_on", "last_order_on", "order_count", "total_quantity", "total_amount_cents",
    "last_quantity", "mean_interval_days", "expected_interval_days", "stage",
    "churn_probability", "p_alive", "clv_cents", "retained_value_cents", "value_at_risk_cents",
    "findings", "check_on", "red_on", "lost_on", "assessed_on", "updated_at",
)  # fmt: skip
COLUMNS = {
    "shop": ("id", "slug", "name", "industry", "timezone", "settings", "created_at"),
    "staff": ("id", "shop_id", "name", "role", "phone", "created_at"),
    "staff_identity": ("shop_id", "staff_id", "channel", "external_id", "created_at"),
    "customer": (
        "id", "shop_id", "name", "aliases", "phone", "address", "kind", "value_class", "tags",
        "status", "assigned_staff_id", "created_at", "match_tag",
    ),
    "orders": (
        "shop_id", "customer_id", "ordered_at", "order_date", "quantity", "unit",
        "amount_cents", "source", "created_at",
    ),
    "customer_summary": ("customer_id", "shop_id", *SUMMARY_FIELDS),
}  # fmt: skip


@dataclass
class Buffers:
    """COPY text per table, flushed in table order (parents first) when big enough."""

    rows: dict[str, list[str]] = field(default_factory=lambda: {t: [] for t in COLUMNS})
    orders: int = 0


class DayStrings(dict[int, str]):
    """Epoch day -> 'YYYY-MM-DD', made once per day (15M orders share a few thousand)."""

    def __missing__(self, day: int) -> str:
        text = from_epoch_day(day).isoformat()
        self[day] = text
        return text


class FixedNow:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def simulate_shop(
    rng: np.random.Generator, *, industry: str, n: int, orders_per_customer: float, today: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customer index, epoch day, quantity, amount in cents) per order, customers 0..n-1."""
    median, spread = RHYTHM[industry]
    interval = np.maximum(2.0, median * np.exp(rng.normal(0.0, spread, n)))
    extra = max(orders_per_customer - 1.0, 0.01)
    # Orders per customer: 1 + negative binomial (mean extra): a few one-off customers,
    # most with a dozen or more, some with many.
    k = 1 + rng.negative_binomial(2, 2 / (2 + extra), n)
    kind = rng.choice(3, size=n, p=CUSTOMER_MIX)
    since = np.where(
        kind == 0,
        rng.uniform(0.0, 1.1, n) * interval,
        np.where(
            kind == 1,
            rng.uniform(1.4, 3.0, n) * interval,
            3.0 * interval + rng.uniform(0, 300, n),
        ),
    )
    last = today - np.round(since).astype(np.int64)
    total = int(k.sum())
    customer = np.repeat(np.arange(n, dtype=np.int64), k)
    gaps = interval[customer] * rng.gamma(6.0, 1 / 6, total)
    starts = np.cumsum(k) - k
    position = np.arange(total) - np.repeat(starts, k)
    gaps[position == 0] = 0.0  # the latest order is `last` itself
    cum = np.cumsum(gaps)
    offset = cum - np.repeat(cum[starts], k)
    day = last[customer] - np.round(offset).astype(np.int64)
    if industry == "water":
        quantity = rng.choice(np.array([1, 2, 3]), size=total, p=[0.5, 0.35, 0.15])
        price = int(rng.integers(15, 23)) * 100
        amount = quantity * price
    else:
        quantity = np.ones(total, dtype=np.int64)
        basket = 6000.0 if industry == "retail" else 30000.0
        per_customer = basket * np.exp(rng.normal(0.0, 0.5, n))
        amount = np.round(per_customer[customer] * np.exp(rng.normal(0.0, 0.3, total)), -1)
    return customer, day, quantity.astype(np.int64), amount.astype(np.int64)


def score_shop(
    *,
    customer: np.ndarray,
    day: np.ndarray,
    quantity: np.ndarray,
    amount: np.ndarray,
    n: int,
    settings: dict[str, Any],
    industry: str,
    today: date,
    now: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """What `rescore_shop` computes for this shop: (stored priors, summary values per
    customer, value class per customer)."""
    orders = OrderArrays(
        customer=customer,
        day=day,
        quantity=quantity.astype(np.float64),
        amount=amount / 100,
        n_customers=n,
    )
    config = RiskConfig.from_settings(settings, industry)
    priors = score_arrays(orders, as_of=today, config=config).priors
    last_days = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_days, orders.customer, np.where(orders.day <= epoch_day(today), day, -1))
    facts = facts_array(
        [
            customer_facts([], last_order=None if d < 0 else from_epoch_day(int(d)), today=today)
            for d in last_days.tolist()
        ]
    )
    scores = score_arrays(orders, as_of=today, config=config, priors=priors, facts=facts)
    clock = FixedNow(now)
    fig = scores.figures
    values = []
    for i in range(n):
        first_day, last_day = int(scores.first_day[i]), int(scores.last_day[i])
        last_q = fig.last_quantity[i]
        values.append(
            _summary_values(
                assessment_at(scores, i),
                first=None if first_day < 0 else from_epoch_day(first_day),
                last=None if last_day < 0 else from_epoch_day(last_day),
                total_quantity=float(scores.total_quantity[i]),
                total_amount=float(scores.total_amount[i]),
                last_quantity=None if np.isnan(last_q) else float(last_q),
                today=today,
                clock=clock,
            )
        )
    # _assign_value_classes: A top 20 % by retained value, B next 30 %, C the rest.
    rank = np.argsort(-scores.retained_value, kind="stable")
    classes = np.full(n, "C", dtype=object)
    classes[rank[: int(n * 0.2)]] = "A"
    classes[rank[int(n * 0.2) : int(n * 0.5)]] = "B"
    stored = {**priors.to_dict(), "fitted_on": today.isoformat()}
    return stored, values, [str(c) for c in classes]


def _names(rng: np.random.Generator, n: int) -> list[str]:
    s = rng.integers(0, len(SURNAMES), n).tolist()
    f = rng.integers(0, len(SUFFIXES), n).tolist()
    return [SURNAMES[a] + SUFFIXES[b] for a, b in zip(s, f, strict=True)]


@dataclass
class Ids:
    shop: int
    staff: int
    customer: int


def add_shop(
    buf: Buffers,
    rng: np.random.Generator,
    *,
    number: int,
    size: int,
    params: Params,
    ids: Ids,
    now: datetime,
    day_str: DayStrings,
) -> None:
    """Simulate, score and buffer one shop (shop, staff, customers, orders, summaries)."""
    today = params.day
    today_e = epoch_day(today)
    industry = str(rng.choice([i for i, _ in INDUSTRY_MIX], p=[p for _, p in INDUSTRY_MIX]))
    customer, day, quantity, amount = simulate_shop(
        rng,
        industry=industry,
        n=size,
        orders_per_customer=params.orders_per_customer,
        today=today_e,
    )
    settings: dict[str, Any] = dict(INDUSTRY_DEFAULTS[industry])
    priors, summaries, classes = score_shop(
        customer=customer, day=day, quantity=quantity, amount=amount, n=size,
        settings=settings, industry=industry, today=today, now=now,
    )  # fmt: skip
    settings[PRIORS_KEY] = priors
    ids.shop += 1
    shop_id = ids.shop
    created = now - timedelta(days=400)
    buf.rows["shop"].append(
        line((shop_id, f"scale-{number:05d}", f"规模测试店{number:05d}", industry, TZ,
              settings, created))
    )  # fmt: skip
    ids.staff += 1
    owner_id = ids.staff
    staff_rows: list[tuple[Any, ...]] = [
        (owner_id, shop_id, "店主", "owner", f"139{number:08d}", created)
    ]
    workers: list[int] = []
    for w in range(int(rng.integers(0, 4))):
        ids.staff += 1
        workers.append(ids.staff)
        staff_rows.append((ids.staff, shop_id, WORKER_NAMES[w], "staff", None, created))
    buf.rows["staff"].extend(line(r) for r in staff_rows)
    buf.rows["staff_identity"].append(
        line((shop_id, owner_id, "local", f"{shop_id}:{LOCAL_OWNER_ID}", created))
    )
    base = ids.customer
    ids.customer += size
    names = _names(rng, size)
    phones = rng.integers(0, 10**8, size).tolist()
    tags = rng.integers(1, 2**40, size).tolist()
    first_days = np.full(size, today_e, dtype=np.int64)
    np.minimum.at(first_days, customer, day)
    cust_lines = buf.rows["customer"]
    for i in range(size):
        first = first_days[i]
        cust_lines.append(
            line((
                base + i + 1, shop_id, names[i], [], f"13{phones[i] % 10:1d}{phones[i]:08d}",
                f"{i % 40 + 1}号楼{i % 6 + 1}单元", "company" if i % 10 == 0 else "household",
                classes[i], [], "active", workers[i % len(workers)] if workers else None,
                f"{day_str[first]} 09:00:00+08", tags[i],
            ))
        )  # fmt: skip
    hours = rng.integers(8, 20, len(day)).tolist()
    stamp = cell(now)
    unit = INDUSTRY_DEFAULTS[industry]["unit"]
    cids = (customer + base + 1).tolist()
    buf.rows["orders"].append(
        "".join(
            f"{shop_id}\t{c}\t{day_str[d]} {h:02d}:00:00+08\t{day_str[d]}\t{q}\t{unit}\t{a}"
            f"\timport\t{stamp}\n"
            for c, d, h, q, a in zip(
                cids, day.tolist(), hours, quantity.tolist(), amount.tolist(), strict=True
            )
        )
    )
    buf.orders += len(day)
    buf.rows["customer_summary"].extend(
        line((base + i + 1, shop_id, *(v[name] for name in SUMMARY_FIELDS)))
        for i, v in enumerate(summaries)
    )


# -- generation -----------------------------------------------------------------------------


def pg_conninfo(url: str) -> str:
    """A libpq URL from a SQLAlchemy one."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _flush(conn: psycopg.Connection[Any], buf: Buffers) -> None:
    with conn.cursor() as cur:
        for table, cols in COLUMNS.items():
            chunk = buf.rows[table]
            if not chunk:
                continue
            quoted = ", ".join(f'"{c}"' for c in cols)
            with cur.copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
                for text in chunk:
                    copy.write(text)
            chunk.clear()
    conn.commit()
    buf.orders = 0


def _secondary_indexes(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Indexes of the big tables that no constraint owns: dropped for the load, rebuilt."""
    return list(
        conn.execute(
            """SELECT ix.indexname, ix.indexdef FROM pg_indexes ix
               WHERE ix.schemaname = current_schema() AND ix.tablename = ANY(%s)
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = ix.indexname)
               ORDER BY ix.indexname""",
            (list(BIG_TABLES),),
        ).fetchall()
    )


@dataclass
class GenStats:
    shops: int
    customers: int
    orders: int
    staff: int
    seconds: float
    load_seconds: float
    index_seconds: float
    peak_rss_mb: float
    largest_shop: int


def generate(url: str, params: Params, *, log: Any = print) -> GenStats:
    """Fill the (migrated, empty) database at `url`; returns what was made."""
    started = time.perf_counter()
    rng = np.random.default_rng(params.seed)
    sizes = shop_sizes(params.shops, params.customers, rng)
    now = datetime.combine(params.day, datetime.min.time(), ZoneInfo(TZ)).astimezone(UTC)
    now = now + timedelta(hours=2)  # the data was imported at 02:00 that morning
    day_str = DayStrings()
    with psycopg.connect(pg_conninfo(url)) as conn:
        ids = Ids(
            *(
                int(conn.execute(f'SELECT coalesce(max(id), 0) FROM "{t}"').fetchone()[0])  # type: ignore[index]
                for t in ("shop", "staff", "customer")
            )
        )
        try:  # skip the per-row FK checks of 15M orders (superuser only; consistent by build)
            conn.execute("SET session_replication_role = replica")
        except psycopg.Error:
            conn.rollback()
        indexes = _secondary_indexes(conn)
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.commit()
        buf = Buffers()
        orders = 0
        staff_before = ids.staff
        load_started = last_log = time.perf_counter()
        load_seconds = 0.0
        try:
            for number, size in enumerate(sizes.tolist(), start=1):
                add_shop(
                    buf, rng, number=number, size=size, params=params, ids=ids, now=now,
                    day_str=day_str,
                )  # fmt: skip
                if buf.orders >= CHUNK_ORDERS or number == len(sizes):
                    orders += buf.orders
                    t0 = time.perf_counter()
                    _flush(conn, buf)
                    load_seconds += time.perf_counter() - t0
                    if t0 - last_log >= 15 or number == len(sizes):
                        last_log = t0
                        log(
                            f"  generated {number}/{len(sizes)} shops, {orders:,} orders "
                            f"({time.perf_counter() - load_started:.0f} s)"
                        )
        finally:
            conn.rollback()
            index_started = time.perf_counter()
            for _name, definition in indexes:
                conn.execute(definition)
            for table, column in (("shop", "id"), ("staff", "id"), ("customer", "id")):
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f'(SELECT coalesce(max({column}), 1) FROM "{table}"))'
                )
            conn.commit()
        index_seconds = time.perf_counter() - index_started
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return GenStats(
        shops=len(sizes),
        customers=int(sizes.sum()),
        orders=orders,
        staff=ids.staff - staff_before,
        seconds=time.perf_counter() - started,
        load_seconds=load_seconds,
        index_seconds=index_seconds,
        peak_rss_mb=peak,
        largest_shop=int(sizes.max()),
    )


def read_meta(url: str) -> dict[str, Any] | None:
    with psycopg.connect(pg_conninfo(url)) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (META_TABLE,)).fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'params'").fetchone()
        return json.loads(row[0]) if row else None


def write_meta(url: str, params: Params, stats: GenStats) -> None:
    with psycopg.connect(pg_conninfo(url)) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key text PRIMARY KEY, value text)")
        for key, value in (("params", params.to_meta()), ("generated", asdict(stats))):
            conn.execute(
                f"INSERT INTO {META_TABLE} VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )


def shop_count(url: str) -> int:
    with psycopg.connect(pg_conninfo(url)) as conn:
        row = conn.execute("SELECT count(*) FROM shop").fetchone()
        return int(row[0]) if row else 0


# -- databases on the server ----------------------------------------------------------------


class Server:
    """CREATE/DROP DATABASE on the server that holds the generated database."""

    def __init__(self, gen_url: str) -> None:
        self.gen_url = gen_url
        parsed = make_url(gen_url)
        self.gen_name = str(parsed.database)
        self.run_name = f"{self.gen_name}_run"
        self.run_url = parsed.set(database=self.run_name).render_as_string(hide_password=False)
        self._admin = [
            parsed.set(database=db).render_as_string(hide_password=False)
            for db in ("postgres", "template1")
            if db != self.gen_name
        ]

    def _admin_conn(self) -> psycopg.Connection[Any]:
        last: Exception | None = None
        for url in self._admin:
            try:
                return psycopg.connect(pg_conninfo(url), autocommit=True)
            except psycopg.Error as exc:
                last = exc
        raise RuntimeError(f"cannot reach a maintenance database: {last}")

    def create(self, name: str) -> None:
        with self._admin_conn() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def fresh_run_copy(self) -> float:
        """Drop the run database and copy the generated one into it; seconds taken."""
        started = time.perf_counter()
        with self._admin_conn() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.run_name}" WITH (FORCE)')
            version = conn.execute("SHOW server_version_num").fetchone()
            strategy = " STRATEGY FILE_COPY" if version and int(version[0]) >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{self.run_name}" TEMPLATE "{self.gen_name}"{strategy}')
        return time.perf_counter() - started

    def drop_run(self) -> None:
        with self._admin_conn() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.run_name}" WITH (FORCE)')


# -- the fake push API ----------------------------------------------------------------------


class FakePushApi:
    """Loopback HTTP server recording (monotonic time, Idempotency-Key, body key)."""

    def __init__(self) -> None:
        self.pushes: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("Idempotency-Key", "")
                try:
                    body_key = str(json.loads(body).get("key", ""))
                except ValueError:
                    body_key = "<bad json>"
                with api.lock:
                    api.pushes.append((time.monotonic(), key, body_key))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/push"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self) -> list[tuple[float, str, str]]:
        with self.lock:
            return list(self.pushes)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- app processes --------------------------------------------------------------------------

SERVE = "from app.cli import main; main()"


@dataclass
class AppProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def proc_status(self, key: str) -> float:
        """A kB figure from /proc/PID/status (VmHWM: peak RSS), 0 if unavailable."""
        try:
            for text in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if text.startswith(key + ":"):
                    return float(text.split()[1])
        except OSError:
            pass
        return 0.0

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.05):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_apps(n: int, *, run_url: str, push_url: str, day: date, work: Path) -> list[AppProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUITOU_")}
    if PINNED_BY_US:
        env.pop("OPENBLAS_NUM_THREADS", None)  # the app processes run as deployed
    env.update(
        HUITOU_DATABASE_URL=run_url,
        HUITOU_TODAY=day.isoformat(),
        # Every shop's digest time has passed "today", whatever the wall-clock hour:
        # the start-up catch-up sends them all (HUITOU_TODAY moves only the date).
        HUITOU_DIGEST_TIME="00:00",
        HUITOU_SCHEDULER_ENABLED="true",
        HUITOU_PUSH_WEBHOOK_URL=push_url,
        HUITOU_SECRET_KEY="scale-benchmark-secret-key-0123456789abcdef",
        HUITOU_DEMO_ON_EMPTY="false",
        HUITOU_WEBCHAT_ENABLED="false",
        HUITOU_TIMEZONE=TZ,
        PYTHONUNBUFFERED="1",
    )
    apps = []
    for i in range(n):
        port = free_port()
        data = work / f"app{i}"
        data.mkdir(parents=True, exist_ok=True)
        log_path = work / f"app{i}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", SERVE, "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=PROJECT_ROOT,
                env={**env, "HUITOU_DATA_DIR": str(data)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        apps.append(AppProcess(proc, port, log_path))
    return apps


# -- measuring ------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class RunResult:
    processes: int
    wall: float
    done: bool
    sent_runs: int
    pushes: list[tuple[float, str, str]]
    start_mono: float
    peak_rss_mb: list[float]
    cpu_seconds: list[float]
    pids: list[int]
    problems: list[str]
    lines: list[str]


def measure(
    server: Server, *, processes: int, day: date, shops: int, timeout: float, work: Path,
    log: Any = print,
) -> RunResult:  # fmt: skip
    """One measured run on a fresh copy of the generated database."""
    copy_seconds = server.fresh_run_copy()
    log(f"  fresh copy of the generated database: {copy_seconds:.1f} s (not measured)")
    api = FakePushApi()
    conn = psycopg.connect(pg_conninfo(server.run_url), autocommit=True)
    apps: list[AppProcess] = []
    done = False
    sent = 0
    try:
        start_mono = time.monotonic()
        apps = start_apps(processes, run_url=server.run_url, push_url=api.url, day=day, work=work)
        last_report = start_mono
        ready: dict[int, float] = {}
        samples = lock_samples = 0
        while True:
            for i, a in enumerate(apps):
                if i not in ready and a.listening():
                    ready[i] = time.monotonic() - start_mono
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'sent') FROM digest_run "
                "WHERE run_date = %s",
                (day,),
            ).fetchone()
            sent = int(row[0]) if row else 0
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            samples += 1
            lock_samples += bool(waiting and waiting[0])
            now = time.monotonic()
            if sent >= shops:
                done = True
                break
            dead = [a for a in apps if a.proc.poll() is not None]
            if dead:
                log(f"  an app process exited (code {dead[0].proc.returncode}):\n{dead[0].tail()}")
                break
            if now - start_mono > timeout:
                log(f"  timed out after {timeout:.0f} s with {sent}/{shops} sent")
                break
            if now - last_report >= 30:
                log(f"  {now - start_mono:6.0f} s: {sent}/{shops} shops sent, "
                    f"{len(api.pushes)} pushes")  # fmt: skip
                last_report = now
            time.sleep(0.2 if shops < 200 else 1.0)
        wall = time.monotonic() - start_mono
        time.sleep(1.0)  # anything still in flight would show up as a second push
        peak = [a.proc_status("VmHWM") / 1024 for a in apps]
        cpu = [a.cpu_seconds() for a in apps]
        pids = [a.proc.pid for a in apps]
        ready_text = ", ".join(
            f"{ready[i]:.1f} s" if i in ready else "not yet" for i in range(len(apps))
        )
    finally:
        for a in apps:
            a.stop()
        api.close()
    pushes = api.snapshot()
    problems, lines = check_and_describe(conn, day=day, shops=shops, pushes=pushes, pids=pids)
    lines.insert(0, f"  app processes listening after: {ready_text} (start-up is in the wall time)")
    lines.append(
        f"  an app connection was waiting on a lock in {lock_samples}/{samples} polls "
        f"({100 * lock_samples / max(samples, 1):.0f} %)"
    )
    conn.close()
    return RunResult(processes, wall, done, sent, pushes, start_mono, peak, cpu, pids,
                     problems, lines)  # fmt: skip


def check_and_describe(
    conn: psycopg.Connection[Any],
    *,
    day: date,
    shops: int,
    pushes: list[tuple[float, str, str]],
    pids: list[int],
) -> tuple[list[str], list[str]]:
    """Exactly-once checks (problems) and the per-run figures (lines)."""
    problems: list[str] = []
    lines: list[str] = []
    runs = conn.execute(
        "SELECT id, shop_id, status, claimed_by, created_at, finished_at, item_count "
        "FROM digest_run WHERE run_date = %s",
        (day,),
    ).fetchall()
    deliveries = conn.execute(
        "SELECT d.run_id, d.shop_id, d.staff_id, d.status, d.channel, d.attempts "
        "FROM digest_delivery d JOIN digest_run r ON r.id = d.run_id WHERE r.run_date = %s",
        (day,),
    ).fetchall()
    total_runs = conn.execute("SELECT count(*) FROM digest_run").fetchone()
    run_shop = {r[0]: r[1] for r in runs}
    if len(runs) != shops or len({r[1] for r in runs}) != shops:
        problems.append(f"{len(runs)} digest runs for {shops} shops")
    if total_runs and int(total_runs[0]) != len(runs):
        problems.append(f"{int(total_runs[0]) - len(runs)} digest runs for another day")
    not_sent = [r for r in runs if r[2] != "sent"]
    if not_sent:
        problems.append(f"{len(not_sent)} runs not sent")
    bad = [d for d in deliveries if d[3] != "sent" or d[4] != "webhook"]
    if bad:
        problems.append(f"{len(bad)} deliveries not sent through the webhook")
    expected = {f"digest:{d[0]}:{d[2]}" for d in deliveries}
    header_keys = Counter(p[1] for p in pushes)
    twice = {k: c for k, c in header_keys.items() if c > 1}
    if twice:
        problems.append(f"{len(twice)} keys pushed more than once, e.g. {next(iter(twice))}")
    if any(p[1] != p[2] for p in pushes):
        problems.append("an Idempotency-Key differs from the body's key")
    if set(header_keys) != expected:
        problems.append(
            f"pushed keys != deliveries: {len(set(header_keys) - expected)} unexpected, "
            f"{len(expected - set(header_keys))} missing"
        )
    # One push per (shop, staff, day): the key names the run (shop and day) and the person.
    per_person = Counter(
        (run_shop.get(int(k.split(":")[1])), int(k.split(":")[2])) for k in header_keys
    )
    if any(c > 1 for c in per_person.values()):
        problems.append("a person got two digests for the same shop and day")
    pushed_shops = {shop for shop, _ in per_person}
    if len(pushed_shops) != shops:
        problems.append(f"pushes reached {len(pushed_shops)} of {shops} shops")
    if [d for d in deliveries if d[5] != 1]:
        lines.append(f"  deliveries pushed more than once (retries): "
                     f"{sum(1 for d in deliveries if d[5] != 1)}")  # fmt: skip

    durations = [
        (r[5] - r[4]).total_seconds() for r in runs if r[4] is not None and r[5] is not None
    ]
    by_holder = Counter(str(r[3]).rsplit(":", 1)[-1] for r in runs)
    shares = []
    for i, pid in enumerate(pids):
        count = by_holder.get(str(pid), 0)
        shares.append(f"process {i + 1} (pid {pid}): {count} shops "
                      f"({100 * count / max(len(runs), 1):.0f} %)")  # fmt: skip
    others = sum(c for h, c in by_holder.items() if h not in {str(p) for p in pids})
    if others:
        shares.append(f"other holders: {others}")
    lines.append("  share: " + "; ".join(shares))
    items = [int(r[6]) for r in runs]
    lines.append(
        f"  runs: {len(runs)}, deliveries/pushes: {len(deliveries)}/{len(pushes)}, "
        f"follow-up items: {sum(items):,} (max {max(items, default=0)} in one shop)"
    )
    if durations:
        lines.append(
            f"  per-shop run time (claim to sent): p50 {pct(durations, 0.5) * 1000:.0f} ms, "
            f"p99 {pct(durations, 0.99) * 1000:.0f} ms, max {max(durations) * 1000:.0f} ms, "
            f"sum {sum(durations):.1f} s"
        )
    return problems, lines


def baseline_due_select(url: str, day: date) -> tuple[float, int]:
    """The floor: one SELECT of every shop's due customers (summary and customer rows)."""
    with psycopg.connect(pg_conninfo(url)) as conn:
        started = time.perf_counter()
        rows = conn.execute(
            """SELECT s.*, c.* FROM customer_summary s JOIN customer c ON c.id = s.customer_id
               WHERE s.check_on <= %s AND s.lost_on > %s AND c.status = 'active'""",
            (day, day),
        ).fetchall()
        return time.perf_counter() - started, len(rows)


def report_run(result: RunResult, *, log: Any = print) -> None:
    pushes = result.pushes
    log(f"  wall time, process start to every shop sent: {result.wall:.1f} s "
        f"({result.sent_runs} shops sent)")  # fmt: skip
    if pushes:
        first, last = pushes[0][0], pushes[-1][0]
        span = max(last - first, 1e-9)
        log(
            f"  digest phase, first push to every shop sent: "
            f"{result.wall - (first - result.start_mono):.1f} s"
        )
        log(f"  pushes: {len(pushes)}; first push {first - result.start_mono:.1f} s after start; "
            f"{len(pushes) / span:.1f} pushes/s between first and last, "
            f"{len(pushes) / max(result.wall, 1e-9):.1f}/s over the wall time")  # fmt: skip
    for text in result.lines:
        log(text)
    log("  app processes: peak RSS " + ", ".join(f"{m:.0f} MB" for m in result.peak_rss_mb)
        + "; CPU " + ", ".join(f"{c:.1f} s" for c in result.cpu_seconds))  # fmt: skip
    if result.problems:
        log("  EXACTLY-ONCE BROKEN: " + "; ".join(result.problems))
    else:
        log("  exactly once: every (shop, staff, day) key pushed once, no key twice, "
            "one run per shop, every delivery sent")  # fmt: skip


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--shops", type=int, default=2000)
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--orders-per-customer", type=float, default=15.0)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--day", type=date.fromisoformat, default=DEFAULT_DAY,
                   help="the benchmark's 'today' (HUITOU_TODAY of the app processes)")  # fmt: skip
    p.add_argument("--database-url", default=os.environ.get("HUITOU_DATABASE_URL", ""),
                   help="a PostgreSQL database to generate into (default: $HUITOU_DATABASE_URL;"
                        " empty: a throwaway cluster in --pg-dir)")  # fmt: skip
    p.add_argument("--pg-dir", type=Path, help="where the throwaway cluster lives")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the cluster (or the run database) for --reuse and inspection",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="measure on the data generated earlier (same parameters)",
    )
    p.add_argument(
        "--compare-processes",
        type=int,
        default=0,
        metavar="K",
        help="also measure with K processes on a fresh copy and print the ratio",
    )
    p.add_argument(
        "--generate-only",
        action="store_true",
        help="generate (or check) the data and stop; use with --keep, measure later with --reuse",
    )
    p.add_argument("--timeout", type=float, default=3 * TARGET_SECONDS)
    p.add_argument("--target", type=float, default=TARGET_SECONDS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.database_url and not args.database_url.startswith("postgresql"):
        p.error("--database-url must be a PostgreSQL URL")
    if args.reuse and not (args.database_url or args.pg_dir):
        p.error("--reuse needs --pg-dir (or a database URL) holding earlier generated data")
    return args


@dataclass
class Setup:
    gen_url: str
    cluster: Cluster | None
    made_dir: bool


def _open_database(args: argparse.Namespace, params: Params, log: Any) -> Setup:
    if args.database_url:
        shown = make_url(args.database_url).render_as_string(hide_password=True)
        log(f"using the PostgreSQL database {shown} (the run copy goes beside it)")
        return Setup(args.database_url, None, False)
    made = args.pg_dir is None
    base = Path(tempfile.mkdtemp(prefix="huitou-scale-")) if made else args.pg_dir
    cluster = Cluster(base)
    fresh = cluster.init()
    if not fresh and not args.reuse:
        raise SystemExit(f"{base} already holds a cluster: pass --reuse, or another --pg-dir")
    cluster.start()
    log(f"PostgreSQL cluster in {base} on 127.0.0.1:{cluster.port}")
    gen_url = cluster.url("huitou_scale")
    if fresh:
        Server(gen_url).create("huitou_scale")
    return Setup(gen_url, cluster, made and not args.keep)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log = print
    params = Params(args.shops, args.customers, args.orders_per_customer, args.seed, args.day)
    try:
        setup = _open_database(args, params, log)
    except PgUnavailable as exc:
        log(f"NOT RUN: {exc}")
        return 1
    work = Path(tempfile.mkdtemp(prefix="huitou-scale-apps-"))
    try:
        return _run(args, params, setup, work, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if setup.cluster is not None:
            if args.keep or args.pg_dir is not None:
                setup.cluster.stop()
                log(f"cluster kept in {setup.cluster.base} (stopped); "
                    f"measure again with --pg-dir {setup.cluster.base} --reuse")  # fmt: skip
            else:
                setup.cluster.remove()


def _run(args: argparse.Namespace, params: Params, setup: Setup, work: Path, log: Any) -> int:
    server = Server(setup.gen_url)
    meta = read_meta(setup.gen_url)
    if args.reuse and meta is not None:
        if meta != params.to_meta():
            log(f"the generated data has other parameters: {meta}")
            return 1
        log(f"reusing generated data: {meta}")
    else:
        if meta is not None:
            log("the database already holds generated data: pass --reuse")
            return 1
        engine = make_engine(setup.gen_url)
        upgrade(engine)
        engine.dispose()
        if shop_count(setup.gen_url):
            log("the database already has shops: give an empty database (or --reuse)")
            return 1
        log(
            f"generating {params.shops:,} shops / {params.customers:,} customers / "
            f"~{params.orders_per_customer:g} orders each (seed {params.seed}, day {params.day})"
        )
        stats = generate(setup.gen_url, params, log=log)
        write_meta(setup.gen_url, params, stats)
        log(f"generated {stats.shops:,} shops, {stats.staff:,} staff, {stats.customers:,} "
            f"customers, {stats.orders:,} orders (largest shop {stats.largest_shop:,}) in "
            f"{stats.seconds:.1f} s (setup, not measured; COPY {stats.load_seconds:.1f} s, "
            f"index rebuild {stats.index_seconds:.1f} s); generator peak RSS "
            f"{stats.peak_rss_mb:.0f} MB")  # fmt: skip
    if args.generate_only:
        return 0
    local = datetime.now(ZoneInfo(TZ))
    if local.hour == 23 and local.minute >= 30:
        log("WARNING: close to midnight in Shanghai: 'today' would change during the run")

    log(f"\nmeasured run: {args.processes} app process(es), scheduler catch-up, fake push API")
    main_run = measure(server, processes=args.processes, day=params.day, shops=params.shops,
                       timeout=args.timeout, work=work / "main", log=log)  # fmt: skip
    report_run(main_run, log=log)
    base_seconds, due_rows = baseline_due_select(server.run_url, params.day)
    ratio = main_run.wall / max(base_seconds, 1e-9)
    log(
        f"\nbaseline: one SELECT of every shop's due customers ({due_rows:,} rows): "
        f"{base_seconds:.2f} s; the run took {ratio:.0f}x that"
    )
    ok = main_run.done and not main_run.problems
    if args.compare_processes:
        log(f"\ncomparison run: {args.compare_processes} app process(es), fresh copy")
        other = measure(
            server,
            processes=args.compare_processes,
            day=params.day,
            shops=params.shops,
            timeout=args.timeout,
            work=work / "compare",
            log=log,
        )
        report_run(other, log=log)
        ok = ok and other.done and not other.problems
        log(f"  {args.processes} vs {args.compare_processes} process(es): "
            f"{main_run.wall:.1f} s vs {other.wall:.1f} s, speed-up "
            f"{other.wall / max(main_run.wall, 1e-9):.2f}x")  # fmt: skip
    if not args.keep:
        server.drop_run()
    within = main_run.done and main_run.wall <= args.target
    verdict = "PASS" if ok and within else "MISS"
    log(f"\n{verdict}: {params.shops:,} shops' digests ({params.customers:,} customers) built "
        f"and pushed by {args.processes} process(es) in {main_run.wall:.1f} s, "
        f"exactly once: {'yes' if not main_run.problems else 'NO'} "
        f"(target < {args.target / 60:g} min)")  # fmt: skip
    if main_run.problems or not main_run.done:
        return 1
    return 0 if verdict == "PASS" else 2


if __name__ == "__main__":
    raise SystemExit(main())
