"""Exactly once per shop per day: run records, leases, retries, catch-up, the CLI."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func
from sqlmodel import select
from typer.testing import CliRunner

from app.channels.models import OutboxMessage
from app.channels.outbox import OutboxPusher
from app.channels.push import PushError, PushMessage, PushReceipt, PushUnavailable
from app.clock import FixedClock
from app.config import Settings
from app.db import read_session
from app.digest.models import DigestDelivery, DigestRun
from app.digest.scheduled import DigestScheduler
from app.digest.service import due_shops, run_digest
from app.outreach.models import FollowUp
from app.shops.models import Shop, Staff

TODAY = date(2026, 6, 17)


class Crash(BaseException):
    """Stands for the process dying in the middle of a push."""


class Recording:
    """A push channel that records what it took; it can fail or die on chosen pushes."""

    def __init__(
        self, name: str = "fake", *, crash_on: int | None = None, error: type | None = None
    ):
        self.name = name
        self.keys: list[str] = []
        self.calls = 0
        self.crash_on = crash_on
        self.error = error

    def can_reach(self, *, shop_id: int, staff_id: int) -> bool:
        return True

    def push(self, message: PushMessage) -> PushReceipt:
        self.calls += 1
        if self.crash_on is not None and self.calls == self.crash_on:
            self.keys.append(message.key)  # the provider took it, then we died
            raise Crash
        if self.error is not None:
            raise self.error("provider said no")
        duplicate = message.key in self.keys
        if not duplicate:
            self.keys.append(message.key)
        return PushReceipt(channel=self.name, accepted=True, duplicate=duplicate)


def _add_worker(engine: Engine, shop: Shop, clock: FixedClock) -> None:
    """A second person with customers assigned, so a run has two deliveries."""
    from app.customers.models import Customer
    from app.db import write_session

    with write_session(engine) as session:
        worker = Staff(shop_id=shop.id or 0, name="小周", role="staff", created_at=clock.now())
        session.add(worker)
        session.flush()
        for customer in session.exec(select(Customer).where(Customer.shop_id == shop.id)):
            customer.assigned_staff_id = worker.id
            session.add(customer)


def _run(engine: Engine, shop: Shop, settings: Settings, clock: FixedClock, pushers, holder="p1"):
    assert shop.id is not None
    return run_digest(
        engine=engine, shop_id=shop.id, day=TODAY, settings=settings, clock=clock,
        pushers=pushers, holder=holder,
    )  # fmt: skip


def _count(engine: Engine, model: type) -> int:
    with read_session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_a_second_run_the_same_day_sends_nothing(
    engine: Engine, demo_shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    fake = Recording()
    first = _run(engine, demo_shop, settings, clock, [fake])
    assert (first.status, first.sent) == ("sent", 1)
    followups = _count(engine, FollowUp)
    assert followups > 10
    for holder in ("p1", "p2"):
        again = _run(engine, demo_shop, settings, clock, [fake], holder=holder)
        assert again.status == "skipped_sent"
    assert fake.calls == 1
    assert _count(engine, DigestRun) == 1
    assert _count(engine, FollowUp) == followups


def test_a_live_holder_keeps_others_out_and_a_dead_ones_lease_runs_out(
    engine: Engine, demo_shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    _add_worker(engine, demo_shop, clock)
    dying = Recording(crash_on=1)
    with pytest.raises(Crash):
        _run(engine, demo_shop, settings, clock, [dying], holder="p1")
    with read_session(engine) as session:
        states = sorted(d.status for d in session.exec(select(DigestDelivery)))
    assert states == ["pending", "sending"]
    survivor = Recording()
    # Within the lease the run still belongs to the process that died: nobody doubles up.
    assert (
        _run(engine, demo_shop, settings, clock, [survivor], holder="p2").status == "skipped_held"
    )
    assert survivor.calls == 0
    clock.advance(minutes=3)
    result = _run(engine, demo_shop, settings, clock, [survivor], holder="p2")
    assert (result.status, result.sent) == ("sent", 2)
    # The delivery caught mid-push goes again with the same key (the provider deduplicates);
    # the one never attempted goes once.
    assert survivor.keys[0] == dying.keys[0]
    assert len(set(dying.keys + survivor.keys)) == 2
    with read_session(engine) as session:
        run = session.exec(select(DigestRun)).one()
    assert run.status == "sent"


def test_the_local_outbox_turns_a_repeated_push_into_nothing(
    engine: Engine, demo_shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    outbox = OutboxPusher(engine=engine, clock=clock)

    class DieAfterOutbox:
        name = "local"

        def can_reach(self, *, shop_id: int, staff_id: int) -> bool:
            return True

        def push(self, message: PushMessage) -> PushReceipt:
            outbox.push(message)
            raise Crash  # the outbox row committed, the "sent" mark never did

    with pytest.raises(Crash):
        _run(engine, demo_shop, settings, clock, [DieAfterOutbox()], holder="p1")
    clock.advance(minutes=3)
    assert _run(engine, demo_shop, settings, clock, [outbox], holder="p2").status == "sent"
    assert _count(engine, OutboxMessage) == 1


def test_a_provider_error_leaves_the_delivery_for_the_next_try(
    engine: Engine, demo_shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    failing = Recording(error=PushError)
    result = _run(engine, demo_shop, settings, clock, [failing, Recording("never")])
    # A temporary error is retried on the same channel later, not skipped to the next one.
    assert (result.status, result.pending) == ("partial", 1)
    with read_session(engine) as session:
        delivery = session.exec(select(DigestDelivery)).one()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.error is not None and "provider said no" in delivery.error
    working = Recording()
    retried = _run(engine, demo_shop, settings, clock, [working], holder="p2")
    assert (retried.status, retried.sent, len(working.keys)) == ("sent", 1, 1)


def test_a_channel_that_cannot_reach_falls_through_to_the_next(
    engine: Engine, demo_shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    sms = Recording("sms")
    result = _run(engine, demo_shop, settings, clock, [Recording(error=PushUnavailable), sms])
    assert result.status == "sent"
    with read_session(engine) as session:
        assert session.exec(select(DigestDelivery.channel)).one() == "sms"


def test_catch_up_sends_todays_missed_run_once_and_never_an_old_one(
    engine: Engine, demo_shop: Shop, settings: Settings
) -> None:
    early = FixedClock.at_local(TODAY, hour=7)
    assert due_shops(engine=engine, clock=early, settings=settings) == []
    late = FixedClock.at_local(TODAY, hour=15)
    assert due_shops(engine=engine, clock=late, settings=settings) == [(demo_shop.id, TODAY)]
    fake = Recording()
    scheduler = DigestScheduler(engine=engine, settings=settings, clock=late, pushers=[fake])
    assert [r.status for r in scheduler.catch_up()] == ["sent"]
    assert scheduler.catch_up() == []
    assert fake.calls == 1
    # The next morning only the new day is due; yesterday's run stays as it was.
    tomorrow = FixedClock.at_local(TODAY + timedelta(days=1), hour=9)
    assert due_shops(engine=engine, clock=tomorrow, settings=settings) == [
        (demo_shop.id, TODAY + timedelta(days=1))
    ]


def test_each_shop_gets_a_job_at_its_own_time(
    engine: Engine, demo_shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    from app.db import write_session

    with write_session(engine) as session:
        shop = session.get(Shop, demo_shop.id)
        assert shop is not None
        shop.settings = {**shop.settings, "digest_time": "07:30"}
        session.add(shop)
    scheduler = DigestScheduler(
        engine=engine, settings=settings, clock=clock, pushers=[Recording()]
    )
    scheduler.sync_jobs()
    job = scheduler.scheduler.get_job(f"digest:{demo_shop.id}")
    assert job is not None
    fields = {f.name: str(f) for f in job.trigger.fields}
    assert (fields["hour"], fields["minute"]) == ("7", "30")
    assert str(job.trigger.timezone) == "Asia/Shanghai"
    scheduler.scheduler.start(paused=True)
    first = job.trigger.get_next_fire_time(
        None, datetime(2026, 6, 17, 0, 0, tzinfo=clock.now().tzinfo)
    )
    # 00:00 UTC is 08:00 in Shanghai, so the next 07:30 there is the following morning.
    assert first == datetime(2026, 6, 18, 7, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    scheduler.shutdown()


def test_cli_dry_run_prints_the_digest_and_writes_nothing(
    engine: Engine, demo_shop: Shop, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli import cli
    from app.config import get_settings

    monkeypatch.setenv("HUITOU_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HUITOU_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("HUITOU_TODAY", TODAY.isoformat())
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        dry = runner.invoke(cli, ["digest", "--shop", demo_shop.slug, "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "回头客提醒(预览)" in dry.output and "王姐" in dry.output
        assert _count(engine, FollowUp) == 0 and _count(engine, DigestRun) == 0
        sent = runner.invoke(cli, ["digest", "--shop", demo_shop.slug])
        assert sent.exit_code == 0, sent.output
        assert "已发送" in sent.output and "状态 sent" in sent.output
        again = runner.invoke(cli, ["digest", "--shop", demo_shop.slug])
        assert "今天已经发过了" in again.output
        assert _count(engine, OutboxMessage) == 1
        other_day = runner.invoke(cli, ["digest", "--shop", demo_shop.slug, "--date", "2026-06-10"])
        assert other_day.exit_code == 1
        missing = runner.invoke(cli, ["digest", "--shop", "nope", "--dry-run"])
        assert missing.exit_code == 1
    finally:
        get_settings.cache_clear()


@pytest.mark.postgres
def test_a_shop_another_process_is_building_is_skipped_at_once_not_waited_for(
    engine: Engine, demo_shop: Shop, settings: Settings, clock: FixedClock
) -> None:
    """PostgreSQL: the builder holds the shop's advisory key until it commits; a second
    process moves on to other shops instead of queuing behind the whole build."""
    from sqlalchemy import text

    from tests.conftest import PG_URL

    if not PG_URL:
        pytest.skip("runs in the PostgreSQL pass of scripts/test (HUITOU_TEST_DATABASE_URL)")
    assert demo_shop.id is not None
    key = demo_shop.id * 1_000_000 + TODAY.toordinal()
    fake = Recording()
    with engine.connect() as other:  # "the other process", mid-build
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        held = _run(engine, demo_shop, settings, clock, [fake], holder="p2")
        assert held.status == "skipped_held"
        assert _count(engine, DigestRun) == 0 and fake.calls == 0
        other.rollback()
    done = _run(engine, demo_shop, settings, clock, [fake], holder="p2")
    assert (done.status, fake.calls) == ("sent", 1)
