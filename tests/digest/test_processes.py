"""Exactly once across real processes: two senders at the same moment, and a kill -9 while
a push is in flight. Runs on the test database (SQLite file, or PostgreSQL under CI)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from app.clock import FixedClock
from app.config import Settings
from app.db import read_session, write_session
from app.digest.models import DigestDelivery, DigestRun
from app.shops.models import Shop, Staff
from tests.factories import make_shop

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TODAY = "2026-06-17"


class FakeProvider:
    """A push API on loopback that records every request and can hang one of them."""

    def __init__(self, *, hang_on: int | None = None) -> None:
        self.requests: list[str] = []  # idempotency keys, in arrival order
        self.accepted: set[str] = set()
        self.hang_on = hang_on
        self.in_flight = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("Idempotency-Key", "")
                assert json.loads(body)["key"] == key
                with provider.lock:
                    provider.requests.append(key)
                    number = len(provider.requests)
                    provider.accepted.add(key)  # like WeCom's duplicate check: once per key
                if number == provider.hang_on:
                    provider.in_flight.set()
                    provider.release.wait(30)  # the sender is killed while waiting here
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/push"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def provider_factory() -> Iterator[type[FakeProvider]]:
    made: list[FakeProvider] = []

    class Made(FakeProvider):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield Made
    for provider in made:
        provider.close()


def _env(engine: Engine, settings: Settings, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUITOU_")}
    env.update(
        HUITOU_DATABASE_URL=engine.url.render_as_string(hide_password=False),
        HUITOU_DATA_DIR=str(settings.data_dir),
        HUITOU_TODAY=TODAY,
        HUITOU_PUSH_WEBHOOK_URL=url,
        HUITOU_DIGEST_LEASE_SECONDS="2",
        HUITOU_SCHEDULER_ENABLED="0",
        HUITOU_SECRET_KEY="test-secret-key-for-links-0123456789",
    )
    return env


_SEND_ALL = """
import sys
from app.config import get_settings
from app.clock import clock_for
from app.db import make_engine, read_session
from app.digest.scheduled import default_pushers
from app.digest.service import run_digest
from app.shops.models import Shop
from sqlmodel import select
from datetime import date

settings = get_settings()
clock = clock_for(settings.today, settings.timezone)
engine = make_engine(settings.effective_database_url)
with read_session(engine) as session:
    ids = [s.id for s in session.exec(select(Shop).order_by(Shop.id))]
pushers = default_pushers(settings=settings, engine=engine, clock=clock)
for shop_id in ids:
    print(run_digest(engine=engine, shop_id=shop_id, day=date.fromisoformat(sys.argv[1]),
                     settings=settings, clock=clock, pushers=pushers).status, flush=True)
"""


def _expected_keys(engine: Engine) -> set[str]:
    with read_session(engine) as session:
        return {f"digest:{d.run_id}:{d.staff_id}" for d in session.exec(select(DigestDelivery))}


def test_two_processes_sending_every_shops_digest_at_once_send_each_once(
    engine: Engine,
    demo_shop: Shop,
    settings: Settings,
    clock: FixedClock,
    provider_factory: type[FakeProvider],
) -> None:
    for n in range(4):
        make_shop(engine, clock, slug=f"shop-{n}", name=f"水站{n}")
    provider = provider_factory()
    env = _env(engine, settings, provider.url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SEND_ALL, TODAY],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    statuses = [line for out, _ in outputs for line in out.split()]
    assert statuses.count("sent") == 5  # each shop sent by exactly one of the two
    expected = _expected_keys(engine)
    assert len(expected) == 5
    assert sorted(provider.requests) == sorted(expected)  # nothing pushed twice
    with read_session(engine) as session:
        runs = session.exec(select(DigestRun)).all()
    assert len(runs) == 5 and {r.status for r in runs} == {"sent"}


def test_a_sender_killed_mid_push_is_finished_by_the_next_without_doubling(
    engine: Engine,
    demo_shop: Shop,
    settings: Settings,
    clock: FixedClock,
    provider_factory: type[FakeProvider],
) -> None:
    from app.customers.models import Customer

    with write_session(engine) as session:
        worker = Staff(shop_id=demo_shop.id or 0, name="小周", role="staff", created_at=clock.now())
        session.add(worker)
        session.flush()
        for customer in session.exec(select(Customer).where(Customer.shop_id == demo_shop.id)):
            customer.assigned_staff_id = worker.id  # the quiet ones go on the worker's list
            session.add(customer)
    provider = provider_factory(hang_on=1)
    env = _env(engine, settings, provider.url)
    cmd = [str(PROJECT_ROOT / ".venv" / "bin" / "huitou"), "digest", "--shop", demo_shop.slug]
    first = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert provider.in_flight.wait(60), "the first push never arrived"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    with read_session(engine) as session:
        states = [d.status for d in session.exec(select(DigestDelivery))]
    assert "sending" in states  # it really died mid-push
    time.sleep(2.5)  # the dead holder's lease runs out
    second = subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    assert "已发送" in second.stdout
    expected = _expected_keys(engine)
    # The push caught by the kill went again with the same key; nothing else was repeated.
    assert provider.accepted == expected
    assert len(provider.requests) == len(expected) + 1
    assert len(expected) == 2  # the owner's list and the worker's
    assert provider.requests[0] == provider.requests[1]
    third = subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "今天已经发过了" in third.stdout
    assert len(provider.requests) == len(expected) + 1
