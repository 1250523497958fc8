"""Sustained load through the real callbacks: mixed owner commands and orders, both channels.

    python -m benchmarks.load [--owners 20] [--duration 20] [--max-requests 4000]
        [--pg-url postgresql+psycopg://... --pg-processes 2]

Runs the app with uvicorn on loopback (one process on SQLite; with --pg-url, also N
processes on PostgreSQL, each on its own port, owners spread over them; the database at
--pg-url is wiped: a throwaway one only). Each simulated owner is a coroutine that sends,
one after another, signed and AES-encrypted callbacks to /wecom (half the owners) or the
Official Account's /wechat in safe mode (the other half), picking each message from a
fixed mix: orders for real demo customers, 今天该跟进谁, a customer card, 本月统计, 帮助.
Bounded by --duration seconds and --max-requests. Every reply is verified and decrypted;
afterwards the orders in the database must equal the orders acknowledged (nothing lost,
nothing doubled). The per-sender flood limit is raised for the run (one simulated owner
sends far faster than a person).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select

from app.clock import clock_for
from app.customers.models import Customer
from app.db import make_engine, read_session
from app.orders.models import Order
from benchmarks.webhook_latency import (
    Connection,
    Server,
    free_port,
    load_demo_with_identities,
    percentile,
    prepared_database,
    start_server,
    stop_server,
)
from tests.channels.wire import OfficialAccountSide, WeComSide, field_of, new_aes_key, text_xml

CORP_ID = "wwloadtest0000001"
APP_ID = "wxloadtest0000001"
TODAY = date(2026, 6, 17)
# (kind, weight): what owners send, roughly as a working day's chat would have it.
MIX = (("order", 5), ("followups", 2), ("card", 1), ("month", 1), ("help", 1))
FIXED_TEXT = {"followups": "今天该跟进谁", "month": "本月统计", "help": "帮助"}


@dataclass
class Result:
    backend: str
    processes: int
    timings: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0
    elapsed: float = 0.0
    orders_acknowledged: int = 0
    orders_stored: int = 0

    @property
    def all_timings(self) -> list[float]:
        return [t for values in self.timings.values() for t in values]


def unique_names(url: str) -> list[str]:
    """Names of active demo customers that name exactly one customer (orders need no choice)."""
    engine = make_engine(url)
    with read_session(engine) as session:
        rows = session.execute(
            select(Customer.name)
            .where(Customer.status == "active")
            .group_by(Customer.name)
            .having(func.count() == 1)
            .order_by(Customer.name)
        ).all()
    engine.dispose()
    # Short plain names only: a name that reads like a command word would change the intent.
    return [name for (name,) in rows if 2 <= len(name) <= 4 and name.isalnum()]


def count_orders(url: str) -> int:
    engine = make_engine(url)
    with read_session(engine) as session:
        count = int(session.execute(select(func.count()).select_from(Order)).scalar_one())
    engine.dispose()
    return count


def run_one(
    *, backend: str, url: str, reset: bool, processes: int, owners: int, duration: float,
    max_requests: int, seed: int,
) -> Result:  # fmt: skip
    """Load one configuration; its result."""
    wecom = WeComSide(token="loadToken", aes_key=new_aes_key(), corp_id=CORP_ID)
    oa = OfficialAccountSide(token="loadOaToken", app_id=APP_ID, aes_key=new_aes_key())
    clock = clock_for(TODAY, "Asia/Shanghai")
    senders = [(("wecom", f"wecomowner{i:02d}") if i % 2 == 0 else ("wechat", f"oOaOwner{i:02d}"))
               for i in range(owners)]  # fmt: skip
    with prepared_database(url if backend == "postgresql" else "", reset) as (db_url, data_dir):
        engine = make_engine(db_url)
        by_channel: dict[str, list[str]] = defaultdict(list)
        for channel, sender in senders:
            by_channel[channel].append(sender)
        load_demo_with_identities(engine, by_channel)
        engine.dispose()
        names = unique_names(db_url)
        orders_before = count_orders(db_url)
        env = {
            "HUITOU_DATA_DIR": str(data_dir),
            "HUITOU_DATABASE_URL": db_url if backend == "postgresql" else "",
            "HUITOU_TODAY": TODAY.isoformat(),
            "HUITOU_SCHEDULER_ENABLED": "false",
            "HUITOU_WECOM_CORP_ID": CORP_ID,
            "HUITOU_WECOM_TOKEN": wecom.token,
            "HUITOU_WECOM_AES_KEY": wecom.aes_key,
            "HUITOU_WECOM_AGENT_ID": "1000002",
            "HUITOU_WECHAT_APP_ID": APP_ID,
            "HUITOU_WECHAT_TOKEN": oa.token,
            "HUITOU_WECHAT_AES_KEY": oa.aes_key,
            "HUITOU_CALLBACK_SENDER_BURST": "1000000",
        }
        servers = [start_server(env, port=free_port()) for _ in range(processes)]
        result = Result(backend, processes)
        gc.collect()  # see webhook_latency: client GC pauses are not server latency
        gc.freeze()
        try:
            asyncio.run(
                _drive(
                    servers,
                    senders,
                    names,
                    wecom,
                    oa,
                    clock.now().timestamp(),
                    duration,
                    max_requests,
                    random.Random(seed),
                    result,
                )
            )
        finally:
            for server in servers:
                stop_server(server)
        result.orders_stored = count_orders(db_url) - orders_before
    return result


async def _drive(
    servers: Sequence[Server], senders: Sequence[tuple[str, str]], names: Sequence[str],
    wecom: WeComSide, oa: OfficialAccountSide, now: float, duration: float, max_requests: int,
    rng: random.Random, result: Result,
) -> None:  # fmt: skip
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    budget = [max_requests]
    deadline = time.perf_counter() + duration
    timestamp = int(now)

    async def owner(index: int, channel: str, sender: str) -> None:
        connection = await Connection.open(servers[index % len(servers)].base)
        try:
            while budget[0] > 0 and time.perf_counter() < deadline:
                budget[0] -= 1
                kind = rng.choice(kinds)
                if kind == "order":
                    text = f"{rng.choice(names)} {rng.randint(1, 3)}桶"
                elif kind == "card":
                    text = rng.choice(names)
                else:
                    text = FIXED_TEXT[kind]
                started = time.perf_counter()
                try:
                    reply = await _send(connection, channel, sender, text, wecom, oa, timestamp)
                except Exception:
                    result.errors += 1
                    continue
                result.timings[kind].append((time.perf_counter() - started) * 1000)
                if kind == "order":
                    if "已记" in reply:
                        result.orders_acknowledged += 1
                    else:
                        result.errors += 1
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(owner(i, c, s) for i, (c, s) in enumerate(senders)))
    result.elapsed = time.perf_counter() - started


async def _send(
    connection: Connection, channel: str, sender: str, text: str, wecom: WeComSide,
    oa: OfficialAccountSide, timestamp: int,
) -> str:  # fmt: skip
    """Post one message the way the platform does; the verified, decrypted reply text."""
    if channel == "wecom":
        request = wecom.callback(timestamp, text_xml(to=CORP_ID, sender=sender, content=text,
                                                     created=timestamp))  # fmt: skip
        status, body = await connection.request("POST", "/wecom", request.params, request.body)
        if status != 200 or not body:
            raise RuntimeError(f"/wecom {status}")
        return field_of(wecom.open_reply(body), "Content")
    xml = text_xml(to="gh_load", sender=sender, content=text, created=timestamp)
    request = oa.callback(timestamp, xml, sender)
    status, body = await connection.request("POST", "/wechat", request.params, request.body)
    if status != 200 or body == "success":
        raise RuntimeError(f"/wechat {status} {body[:20]}")
    return field_of(oa.open_reply(body), "Content")


def print_table(results: Sequence[Result]) -> None:
    print(f"  {'database':<12}{'procs':>6}{'requests':>9}{'errors':>7}{'req/s':>8}"
          f"{'p50 ms':>8}{'p99 ms':>8}   orders acked/stored")  # fmt: skip
    for r in results:
        timings = r.all_timings
        if not timings:
            print(f"  {r.backend:<12}{r.processes:>6}{0:>9}{r.errors:>7}   (no replies)")
            continue
        rate, p50, p99 = (
            len(timings) / r.elapsed,
            statistics.median(timings),
            percentile(timings, 0.99),
        )
        print(f"  {r.backend:<12}{r.processes:>6}{len(timings):>9}{r.errors:>7}{rate:8.1f}"
              f"{p50:8.1f}{p99:8.1f}   {r.orders_acknowledged}/{r.orders_stored}")  # fmt: skip
    for r in results:
        per_kind = ", ".join(
            f"{kind} {statistics.median(v):.0f}/{percentile(v, 0.99):.0f}"
            for kind, v in sorted(r.timings.items())
        )
        print(f"  {r.backend} x{r.processes} p50/p99 ms by kind: {per_kind}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--owners", type=int, default=20)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per configuration")
    parser.add_argument("--max-requests", type=int, default=4000)
    parser.add_argument("--pg-url", default="", help="a throwaway PostgreSQL (wiped)")
    parser.add_argument("--pg-processes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    common = {"owners": args.owners, "duration": args.duration,
              "max_requests": args.max_requests, "seed": args.seed}  # fmt: skip
    results = [run_one(backend="sqlite", url="", reset=False, processes=1, **common)]
    if args.pg_url:
        results.append(run_one(backend="postgresql", url=args.pg_url, reset=True,
                               processes=args.pg_processes, **common))  # fmt: skip
    print(
        f"load: {args.owners} owners (WeCom and Official Account, safe mode), mixed "
        f"{'/'.join(k for k, _ in MIX)}, up to {args.duration:.0f} s or {args.max_requests} "
        "requests per configuration, uvicorn on loopback"
    )
    print_table(results)
    lost = [r for r in results if r.orders_acknowledged != r.orders_stored]
    print("  orders: every acknowledged order stored exactly once" if not lost else
          "  orders: MISMATCH between acknowledged and stored")  # fmt: skip
    return 1 if lost or any(r.errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
