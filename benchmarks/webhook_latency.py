"""WeCom webhook reply latency: `今天该跟进谁` from 20 concurrent owners (target p99 < 300 ms).

    python -m benchmarks.webhook_latency [--owners 20] [--rounds 10]
        [--database-url postgresql+psycopg://... --reset-database] [--workers 1]
        [--http auto|httptools|h11] [--loop auto|uvloop|asyncio]

Loads the demo shop into a fresh SQLite file (WAL, pragmas as in production), or into the
PostgreSQL database given (its public schema is dropped and recreated: a throwaway
database only, and only with --reset-database), binds one WeCom userid per simulated
owner, starts the real app under uvicorn on 127.0.0.1 in its own process (as in
production: the owners' phones are elsewhere), and has each owner post signed,
AES-encrypted callbacks to /wecom one after another (each waits for its reply, as WeCom
does). The owners are coroutines of one asyncio client speaking plain HTTP/1.1 over
keep-alive connections (`Connection` below: a few lines instead of a full client library,
whose per-request cost on the shared cores would otherwise be counted as server latency).
A reply counts only once it has been verified and decrypted.

Baseline, in the same run and over the same loop: GET /healthz (what the HTTP stack alone
costs at this concurrency). Also printed: CPU milliseconds per request of the server
processes and of the client (both share this machine's cores).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

import httpx
from sqlalchemy import Engine, text

from app.clock import clock_for
from app.config import PROJECT_ROOT
from app.db import make_engine, upgrade, write_session
from app.demo.load import load_demo
from app.shops.models import Shop, StaffIdentity
from app.shops.service import owner_of
from tests.channels.wire import WeComSide, field_of, new_aes_key, text_xml

TARGET_P99_MS = 300.0
CORP_ID = "wwbenchmark000001"
AGENT_ID = "1000002"
TODAY = date(2026, 6, 17)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Server:
    """An app server subprocess (uvicorn) on loopback."""

    process: subprocess.Popen[bytes]
    base: str

    def cpu(self) -> float:
        return tree_cpu_seconds(self.process.pid)


def start_server(
    env: dict[str, str],
    *,
    workers: int = 1,
    port: int | None = None,
    http: str = "auto",
    loop: str = "auto",
) -> Server:
    """uvicorn app.main:create_app on 127.0.0.1, waited for until /healthz answers.

    `http`/`loop` as uvicorn takes them: "auto" picks httptools and uvloop (installed with
    the project); "h11"/"asyncio" measure the pure-Python stack for comparison.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
               "--no-access-log", "--http", http, "--loop", loop]  # fmt: skip
    if workers > 1:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=PROJECT_ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return Server(process, base)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start within 60 s")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@contextmanager
def prepared_database(database_url: str, reset: bool) -> Iterator[tuple[str, Path]]:
    """(database URL, data dir): a fresh SQLite file, or the given PostgreSQL reset."""
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'huitou.db'}"
        if database_url:
            if not reset:
                raise SystemExit("--database-url needs --reset-database (its schema is dropped)")
            engine = make_engine(url)
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
            engine.dispose()
        yield url, Path(tmp)


def load_demo_with_owners(engine: Engine, owners: Sequence[str], channel: str) -> Shop:
    """Migrate, load the demo shop, and bind each id in `owners` to its owner on `channel`."""
    return load_demo_with_identities(engine, {channel: owners})


def load_demo_with_identities(engine: Engine, identities: dict[str, Sequence[str]]) -> Shop:
    """Migrate, load the demo shop, and bind each (channel, id) to its owner."""
    clock = clock_for(TODAY, "Asia/Shanghai")
    upgrade(engine)
    shop, _ = load_demo(engine=engine, clock=clock)
    with write_session(engine) as session:
        owner = owner_of(session=session, shop=shop)
        for channel, external_ids in identities.items():
            for external_id in external_ids:
                session.add(StaffIdentity(shop_id=shop.id or 0, staff_id=owner.id or 0,
                                          channel=channel, external_id=external_id,
                                          created_at=clock.now()))  # fmt: skip
    return shop


class Connection:
    """One keep-alive HTTP/1.1 connection to the server (requests one at a time)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base: str) -> Connection:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port)))

    async def request(
        self, method: str, path: str, params: dict[str, str] | None = None, body: str = ""
    ) -> tuple[int, str]:
        """(status, body text)."""
        if params:
            path = f"{path}?{urlencode(params)}"
        payload = body.encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: text/xml\r\nContent-Length: {len(payload)}\r\n\r\n")  # fmt: skip
        self.writer.write(head.encode() + payload)
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        return status, data.decode()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@dataclass
class Phase:
    name: str
    timings_ms: list[float]
    elapsed_s: float
    server_cpu_ms: float  # per request
    client_cpu_ms: float  # per request

    @property
    def p50(self) -> float:
        return statistics.median(self.timings_ms)

    @property
    def p99(self) -> float:
        return percentile(self.timings_ms, 0.99)

    @property
    def rate(self) -> float:
        return len(self.timings_ms) / self.elapsed_s


async def closed_loop(
    name: str,
    server: Server,
    owners: Sequence[str],
    rounds: int,
    one: Callable[[Connection, str], Awaitable[None]],
) -> Phase:
    """Every owner sends `rounds` requests one after another on its own connection."""
    # Connections are opened (and used once) first, as WeCom's keep-alive would have them.
    connections = [await Connection.open(server.base) for _ in owners]
    for connection in connections:
        await connection.request("GET", "/healthz")
    start_event = asyncio.Event()

    async def owner_loop(connection: Connection, owner: str) -> list[float]:
        await start_event.wait()
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            await one(connection, owner)
            timings.append((time.perf_counter() - started) * 1000)
        return timings

    tasks = [
        asyncio.create_task(owner_loop(c, o)) for c, o in zip(connections, owners, strict=False)
    ]
    await asyncio.sleep(0)
    cpu_server, cpu_client = server.cpu(), own_cpu_seconds()
    started = time.perf_counter()
    start_event.set()
    per_owner = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    count = len(owners) * rounds
    phase = Phase(
        name=name,
        timings_ms=[t for times in per_owner for t in times],
        elapsed_s=elapsed,
        server_cpu_ms=(server.cpu() - cpu_server) / count * 1000,
        client_cpu_ms=(own_cpu_seconds() - cpu_client) / count * 1000,
    )
    for connection in connections:
        await connection.close()
    return phase


def print_phases(phases: Sequence[Phase], baseline: Phase) -> None:
    print(f"  {'':<26}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'req/s':>8}"
          f"{'srv cpu':>9}{'cli cpu':>9}{'p50 x':>7}{'p99 x':>7}")  # fmt: skip
    for phase in phases:
        print(f"  {phase.name:<26}{phase.p50:8.1f}{phase.p99:8.1f}{max(phase.timings_ms):8.1f}"
              f"{phase.rate:8.1f}{phase.server_cpu_ms:8.2f}m{phase.client_cpu_ms:8.2f}m"
              f"{phase.p50 / baseline.p50:7.1f}{phase.p99 / baseline.p99:7.1f}")  # fmt: skip
    print("  (srv/cli cpu: CPU ms per request; p50 x / p99 x: ratio to the baseline row)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--owners", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--reset-database", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"])
    parser.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"])
    args = parser.parse_args(argv)
    side = WeComSide(token="benchToken", aes_key=new_aes_key(), corp_id=CORP_ID)
    clock = clock_for(TODAY, "Asia/Shanghai")
    owners = [f"owner{i:02d}" for i in range(args.owners)]
    with prepared_database(args.database_url, args.reset_database) as (url, data_dir):
        engine = make_engine(url)
        load_demo_with_owners(engine, owners, "wecom")
        backend = engine.dialect.name
        engine.dispose()
        env = {
            "HUITOU_DATA_DIR": str(data_dir),
            "HUITOU_DATABASE_URL": args.database_url,
            "HUITOU_TODAY": TODAY.isoformat(),
            "HUITOU_SCHEDULER_ENABLED": "false",
            "HUITOU_WECOM_CORP_ID": CORP_ID,
            "HUITOU_WECOM_TOKEN": side.token,
            "HUITOU_WECOM_AES_KEY": side.aes_key,
            "HUITOU_WECOM_AGENT_ID": AGENT_ID,
            # One simulated owner sends far faster than a person: lift the per-sender limit.
            "HUITOU_CALLBACK_SENDER_BURST": "100000",
            "HUITOU_CALLBACK_SENDER_PER_MINUTE": "100000",
        }
        server = start_server(env, workers=args.workers, http=args.http, loop=args.loop)

        async def healthz(http: Connection, _owner: str) -> None:
            status, _ = await http.request("GET", "/healthz")
            if status != 200:
                raise RuntimeError(f"/healthz answered {status}")

        async def followups(http: Connection, owner: str) -> None:
            now = int(clock.now().timestamp())
            xml = text_xml(to=CORP_ID, sender=owner, content="今天该跟进谁", created=now)
            request = side.callback(now, xml)
            status, body = await http.request("POST", "/wecom", request.params, request.body)
            if status != 200:
                raise RuntimeError(f"/wecom answered {status}")
            reply = field_of(side.open_reply(body), "Content")
            if "平时" not in reply:
                raise RuntimeError(f"unexpected reply: {reply[:80]}")

        async def run() -> list[Phase]:
            return [
                await closed_loop("baseline: GET /healthz", server, owners, args.rounds, healthz),
                await closed_loop("/wecom 今天该跟进谁", server, owners, args.rounds, followups),
            ]

        # The demo load left many objects in this (client) process; a full GC pass over
        # them mid-run would stall the client and be counted as reply latency.
        gc.collect()
        gc.freeze()
        try:
            phases = asyncio.run(run())
        finally:
            stop_server(server)
    print(
        f"webhook latency, demo shop, {args.owners} concurrent owners x {args.rounds} messages "
        f"(uvicorn x{args.workers} on loopback, http={args.http}, loop={args.loop}, {backend}, "
        "real signing + AES, asyncio client)"
    )
    print_phases(phases, phases[0])
    verdict = "met" if phases[1].p99 < TARGET_P99_MS else "NOT met"
    print(f"  target p99 < {TARGET_P99_MS:.0f} ms: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
