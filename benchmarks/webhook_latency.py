"""WeCom webhook reply latency: `今天该跟进谁` from 20 concurrent owners (target p99 < 300 ms).

    python -m benchmarks.webhook_latency [--owners 20] [--rounds 10]

Loads the demo shop into a fresh SQLite file (WAL, synchronous=FULL as in production),
binds one WeCom userid per simulated owner, starts the real app under uvicorn on
127.0.0.1 in its own process (as in production: the owners' phones are elsewhere), and
has each owner post signed, AES-encrypted callbacks to /wecom one after
another (each waits for its reply, as WeCom does). A reply counts only once it has been
verified and decrypted. Also prints the baseline: GET /healthz over the same loop.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import httpx

from app.clock import clock_for
from app.config import PROJECT_ROOT, Settings
from app.db import make_engine, upgrade, write_session
from app.demo.load import load_demo
from app.shops.models import StaffIdentity
from app.shops.service import owner_of
from tests.channels.wire import WeComSide, field_of, new_aes_key, text_xml

TARGET_P99_MS = 300.0
CORP_ID = "wwbenchmark000001"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--owners", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    side = WeComSide(token="benchToken", aes_key=new_aes_key(), corp_id=CORP_ID)
    clock = clock_for(date(2026, 6, 17), "Asia/Shanghai")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            templates_dir=PROJECT_ROOT / "message_templates",
            wecom_corp_id=CORP_ID,
            wecom_token=side.token,
            wecom_aes_key=side.aes_key,
            wecom_agent_id="1000002",
        )
        engine = make_engine(settings.effective_database_url)
        upgrade(engine)
        shop, _ = load_demo(engine=engine, clock=clock)
        owners = [f"owner{i:02d}" for i in range(args.owners)]
        with write_session(engine) as session:
            owner = owner_of(session=session, shop=shop)
            for userid in owners:
                session.add(StaffIdentity(shop_id=shop.id or 0, staff_id=owner.id or 0,
                                          channel="wecom", external_id=userid,
                                          created_at=clock.now()))  # fmt: skip
        engine.dispose()
        port = free_port()
        env = {
            **os.environ,
            "HUITOU_DATA_DIR": tmp,
            "HUITOU_TODAY": "2026-06-17",
            "HUITOU_WECOM_CORP_ID": CORP_ID,
            "HUITOU_WECOM_TOKEN": side.token,
            "HUITOU_WECOM_AES_KEY": side.aes_key,
            "HUITOU_WECOM_AGENT_ID": "1000002",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
             "--no-access-log"],
            env=env, cwd=PROJECT_ROOT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        barrier = threading.Barrier(len(owners))

        def owner_loop(userid: str, webhook: bool) -> list[float]:
            timings: list[float] = []
            with httpx.Client(base_url=base, timeout=30.0) as http:
                barrier.wait()
                for _ in range(args.rounds):
                    now = int(clock.now().timestamp())
                    xml = text_xml(to=CORP_ID, sender=userid, content="今天该跟进谁", created=now)
                    request = side.callback(now, xml)
                    start = time.perf_counter()
                    if webhook:
                        response = http.post("/wecom", params=request.params, content=request.body)
                        reply = field_of(side.open_reply(response.text), "Content")
                        if "平时" not in reply:
                            raise RuntimeError(f"unexpected reply: {reply[:80]}")
                    else:
                        http.get("/healthz").raise_for_status()
                    timings.append((time.perf_counter() - start) * 1000)
            return timings

        results = {}
        for name, webhook in (("baseline: GET /healthz", False), ("/wecom 今天该跟进谁", True)):
            with ThreadPoolExecutor(max_workers=len(owners)) as pool:
                started = time.perf_counter()
                per_owner = list(pool.map(lambda u, w=webhook: owner_loop(u, w), owners))
                elapsed = time.perf_counter() - started
            results[name] = ([t for times in per_owner for t in times], elapsed)
        server.terminate()
        server.wait(timeout=30)
    print(
        f"webhook latency, demo shop, {args.owners} concurrent owners x {args.rounds} messages "
        "(uvicorn on loopback, SQLite WAL, real signing + AES)"
    )
    for name, (values, elapsed) in results.items():
        print(
            f"  {name:<24} p50 {statistics.median(values):7.1f} ms   "
            f"p99 {percentile(values, 0.99):7.1f} ms   max {max(values):7.1f} ms   "
            f"{len(values) / elapsed:6.1f} req/s"
        )
    p99 = percentile(results["/wecom 今天该跟进谁"][0], 0.99)
    verdict = "met" if p99 < TARGET_P99_MS else "NOT met"
    print(f"  target p99 < {TARGET_P99_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
