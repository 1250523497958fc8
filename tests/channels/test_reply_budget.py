"""What spools a message, and why: a database error raised by the work says "database
unavailable"; our own reply budget running out says so and is no database error; any other
failure of the work, even a TimeoutError it raised itself, is the work's and spools nothing.
A message whose reply went out is never left in the spool for the drainer to replay."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import psycopg.errors
import pytest
from fastapi import BackgroundTasks
from sqlalchemy import exc as sa_exc

from app.channels.inbox import Handled, Inbound
from app.channels.reply import answer_in_time
from app.channels.spool import Spool, spool_of
from app.config import Settings

REPLY = "王姐 2桶 已记"


def run(coroutine: Coroutine[Any, Any, list[str]]) -> list[str]:
    # A loop of its own, like the callbacks' (see tests/faults/test_webhook_kill.py).
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class Late:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.called = threading.Event()

    def __call__(self, text: str) -> None:
        self.sent.append(text)
        self.called.set()


def answer(settings: Settings, key: str, work: Callable[[], Handled], late: Late) -> list[str]:
    state = SimpleNamespace(settings=settings)
    inbound = Inbound("wechat", "oOwner_openid_123", key, "王姐 2桶")
    coroutine = answer_in_time(
        state=state, background=BackgroundTasks(), inbound=inbound, work=work,
        send_text=late, send_image=lambda _image: None,
    )  # fmt: skip
    try:
        return run(coroutine)
    finally:
        spool_of(state).close()  # the work, if still running, opens it again


def spooled_keys(settings: Settings) -> list[str]:
    spool = Spool(settings.data_dir / "spool.db")
    try:
        return [inbound.message_key for inbound in spool.waiting()]
    finally:
        spool.close()


def spool_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "app.channels.spool"]


def test_a_cancelled_postgresql_statement_spools_the_message_as_database_unavailable(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def work() -> Handled:
        # What SQLAlchemy raises when PostgreSQL cancels a statement (statement_timeout).
        cause = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
        raise sa_exc.OperationalError("UPDATE inbox_message ...", {}, cause)

    late = Late()
    with caplog.at_level(logging.WARNING, logger="app.channels.spool"):
        assert answer(settings, "budget-db-1", work, late) == []
    assert spooled_keys(settings) == ["budget-db-1"]
    assert spool_log(caplog) == ["database unavailable: wechat message budget-db-1 spooled"]
    assert late.sent == []


def test_a_timeout_the_work_raised_itself_is_its_failure_not_a_spent_budget(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def work() -> Handled:
        raise TimeoutError("timed out")  # e.g. a socket's own timeout, well within budget

    with (
        caplog.at_level(logging.WARNING, logger="app.channels.spool"),
        pytest.raises(TimeoutError, match="timed out"),
    ):
        answer(settings, "budget-own-timeout-1", work, Late())
    assert spooled_keys(settings) == []
    assert spool_log(caplog) == []


def test_a_spent_reply_budget_spools_the_message_as_such_until_the_late_reply_goes_out(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.model_copy(update={"wechat_reply_budget_seconds": 0.0})
    go = threading.Event()

    def work() -> Handled:
        go.wait(10)
        return Handled([REPLY], fresh=True)

    late = Late()
    try:
        with caplog.at_level(logging.WARNING, logger="app.channels.spool"):
            assert answer(settings, "budget-spent-1", work, late) == []
        assert spooled_keys(settings) == ["budget-spent-1"]
        assert spool_log(caplog) == [
            "no reply within the 0 s budget: wechat message budget-spent-1 spooled"
        ]
    finally:
        go.set()
    assert late.called.wait(10)
    assert late.sent == [REPLY]
    assert spooled_keys(settings) == []


def test_a_reply_that_ends_while_the_message_is_being_spooled_leaves_nothing_spooled(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings.model_copy(update={"wechat_reply_budget_seconds": 0.0})
    go = threading.Event()
    keep = Spool.keep

    def keep_as_the_work_ends(self: Spool, inbound: Inbound, *, reason: str) -> None:
        go.set()  # the work ends now, while the spent budget is being recorded
        late_called.wait(0.5)
        keep(self, inbound, reason=reason)

    def work() -> Handled:
        go.wait(10)
        return Handled([REPLY], fresh=True)

    late = Late()
    late_called = late.called
    monkeypatch.setattr(Spool, "keep", keep_as_the_work_ends)
    try:
        assert answer(settings, "budget-race-1", work, late) == []
    finally:
        go.set()
    assert late.called.wait(10)
    assert late.sent == [REPLY]
    # Left spooled, the drainer would replay a message already answered.
    assert spooled_keys(settings) == []
