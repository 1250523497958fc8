"""kill -9 the server during a burst of orders through /wecom; after a restart and WeChat's
redeliveries (here: every message sent again), each order is stored exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from app.clock import FixedClock, clock_for
from app.db import read_session, write_session
from app.events.models import InboxMessage
from app.orders.models import Order
from app.shops.models import Shop, StaffIdentity
from app.shops.service import owner_of
from benchmarks.load import unique_names
from benchmarks.webhook_latency import Connection, start_server, stop_server
from tests.channels.wire import WeComSide, field_of, new_aes_key, text_xml

CORP_ID = "wwfaults000000001"
USER = "KillOwner"
BURST = 60
KILL_AFTER_ACKS = 15


def counts(engine: Engine) -> tuple[int, int]:
    with read_session(engine) as session:
        orders = session.execute(select(func.count()).select_from(Order)).scalar_one()
        inbox = session.execute(
            select(func.count()).where(InboxMessage.channel == "wecom")  # type: ignore[arg-type]
        ).scalar_one()
    return int(orders), int(inbox)


async def send_all(base: str, side: WeComSide, messages: list[tuple[int, str]], now: int,
                   acked: dict[int, str], kill: object | None = None) -> None:  # fmt: skip
    """Send every message over 6 connections; note each acknowledged reply by MsgId."""
    queue = list(messages)

    async def worker() -> None:
        try:
            connection = await Connection.open(base)
        except OSError:
            return
        while queue:
            msg_id, text = queue.pop(0)
            request = side.callback(now, text_xml(to=CORP_ID, sender=USER, content=text,
                                                  created=now, msg_id=msg_id))  # fmt: skip
            try:
                status, body = await connection.request("POST", "/wecom", request.params,
                                                        request.body)  # fmt: skip
            except (OSError, asyncio.IncompleteReadError):
                return  # the server is gone
            if status == 200 and body:
                acked[msg_id] = field_of(side.open_reply(body), "Content")
                if kill is not None and len(acked) >= KILL_AFTER_ACKS:
                    kill()  # type: ignore[operator]
        await connection.close()

    await asyncio.gather(*(worker() for _ in range(6)))


@pytest.mark.slow
def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """asyncio.run in a thread of its own: the browser tests' session-wide Playwright keeps an
    event loop running in the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def test_kill_9_during_an_order_burst_loses_and_doubles_nothing(
    engine: Engine, demo_shop: Shop, clock: FixedClock, tmp_path: Path
) -> None:
    side = WeComSide(token="faultToken", aes_key=new_aes_key(), corp_id=CORP_ID)
    with write_session(engine) as session:
        owner = owner_of(session=session, shop=demo_shop)
        identity = StaffIdentity(
            shop_id=demo_shop.id or 0,
            staff_id=owner.id or 0,
            channel="wecom",
            external_id=USER,
            created_at=clock.now(),
        )
        session.add(identity)
    url = engine.url.render_as_string(hide_password=False)
    names = unique_names(url)[:BURST]
    assert len(names) == BURST
    messages = [(8_100_000 + i, f"{name} {1 + i % 3}桶") for i, name in enumerate(names)]
    orders_before, inbox_before = counts(engine)
    env = {
        "HUITOU_DATA_DIR": str(tmp_path / "data"),
        "HUITOU_DATABASE_URL": url,
        "HUITOU_TODAY": "2026-06-17",
        "HUITOU_SCHEDULER_ENABLED": "false",
        "HUITOU_WECOM_CORP_ID": CORP_ID,
        "HUITOU_WECOM_TOKEN": side.token,
        "HUITOU_WECOM_AES_KEY": side.aes_key,
        "HUITOU_WECOM_AGENT_ID": "1000002",
        "HUITOU_CALLBACK_SENDER_BURST": "1000",
    }
    # The server's clock (HUITOU_TODAY): today's date at the real time of day.
    now = int(clock_for(date(2026, 6, 17), "Asia/Shanghai").now().timestamp())

    server = start_server(env)
    first: dict[int, str] = {}
    killed: list[float] = []

    def kill() -> None:
        if not killed:
            os.kill(server.process.pid, signal.SIGKILL)
            killed.append(time.monotonic())

    _run(send_all(server.base, side, messages, now, first, kill))
    if not killed:
        stop_server(server)
        pytest.fail(f"the burst ended before the kill ({len(first)} acknowledged)")
    server.process.wait(timeout=10)
    assert killed and server.process.returncode == -signal.SIGKILL
    assert KILL_AFTER_ACKS <= len(first) < BURST  # killed mid-burst
    orders_mid, _ = counts(engine)
    # Nothing acknowledged was lost by the kill; nothing more than was sent was stored.
    assert len(first) <= orders_mid - orders_before <= BURST

    server = start_server(env)
    try:
        again: dict[int, str] = {}
        _run(send_all(server.base, side, messages, now, again))
    finally:
        stop_server(server)
    assert len(again) == BURST and all("已记" in reply for reply in again.values())
    # Acknowledged before the kill: the redelivery repeats the very same reply.
    assert all(again[msg_id] == reply for msg_id, reply in first.items())
    orders_after, inbox_after = counts(engine)
    assert orders_after - orders_before == BURST
    assert inbox_after - inbox_before == BURST
