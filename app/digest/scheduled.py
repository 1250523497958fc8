"""The morning digest on a schedule: an APScheduler job per shop at the shop's time.

Several processes may run this at once (two app servers on PostgreSQL): the run records in
app/digest/service.py make each shop's digest go out once whoever fires first. A periodic
sweep re-syncs the jobs (new shops, changed times) and catches up a run missed while the
server was down, the same day only.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import date

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlmodel import select

from app.channels.http_push import WebhookPusher
from app.channels.outbox import OutboxPusher
from app.channels.push import Pusher
from app.clock import Clock
from app.config import Settings
from app.db import read_session
from app.digest.service import RunResult, digest_time, due_shops, run_digest
from app.shops.models import Shop

log = logging.getLogger(__name__)

SWEEP_MINUTES = 5


def default_pushers(*, settings: Settings, engine: Engine, clock: Clock) -> list[Pusher]:
    """The configured channels in preference order, the local outbox last (always works)."""
    from app.channels.pushers import pushers_from_settings

    pushers: list[Pusher] = list(pushers_from_settings(settings, engine, clock=clock))
    if settings.push_webhook_url:
        pushers.append(WebhookPusher(url=settings.push_webhook_url))
    pushers.append(OutboxPusher(engine=engine, clock=clock))
    return pushers


class DigestScheduler:
    """Owns the APScheduler instance of one process."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        pushers: list[Pusher] | None = None,
        on_result: Callable[[RunResult], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.pushers = pushers or default_pushers(settings=settings, engine=engine, clock=clock)
        self.on_result = on_result
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self._lock = threading.Lock()

    def start(self) -> None:
        self.sync_jobs()
        self.scheduler.add_job(
            self.sweep,
            IntervalTrigger(minutes=SWEEP_MINUTES),
            id="digest:sweep",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )
        self.scheduler.start()
        # Catch up at start-up without holding up the server's boot.
        self.scheduler.add_job(self.catch_up, id="digest:catch_up", replace_existing=True)

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def sync_jobs(self) -> None:
        """One cron job per shop at its digest time in its timezone."""
        with read_session(self.engine) as session:
            shops = list(session.exec(select(Shop)))
        for shop in shops:
            hour, minute = digest_time(shop, self.settings)
            self.scheduler.add_job(
                self.run_shop,
                CronTrigger(hour=hour, minute=minute, timezone=shop.timezone),
                args=[shop.id],
                id=f"digest:{shop.id}",
                replace_existing=True,
                coalesce=True,
                misfire_grace_time=3600,
                max_instances=1,
            )

    def sweep(self) -> None:
        self.sync_jobs()
        self.catch_up()

    def catch_up(self) -> list[RunResult]:
        """Send every digest whose time has passed today and that is not sent yet.

        In a random order: two processes starting together then work on different shops
        instead of one queuing behind the other's claim, shop after shop."""
        due = due_shops(engine=self.engine, clock=self.clock, settings=self.settings)
        random.shuffle(due)
        return [self._run(shop_id, day) for shop_id, day in due]

    def run_shop(self, shop_id: int) -> RunResult | None:
        due = due_shops(
            engine=self.engine, clock=self.clock, settings=self.settings, shop_id=shop_id
        )
        return self._run(*due[0]) if due else None

    def _run(self, shop_id: int, day: date) -> RunResult:
        with self._lock:  # one send loop per process at a time; other processes may race
            try:
                result = run_digest(
                    engine=self.engine,
                    shop_id=shop_id,
                    day=day,
                    settings=self.settings,
                    clock=self.clock,
                    pushers=self.pushers,
                )
            except Exception:
                log.exception(
                    "digest for shop %s on %s failed; the next sweep retries", shop_id, day
                )
                raise
        log.info("digest shop=%s day=%s: %s", shop_id, day, result.status)
        if self.on_result is not None:
            self.on_result(result)
        return result
