"""Sending a shop's digest exactly once per day, however many processes try and whenever
one of them dies.

1. Claim: insert the (shop, day) run record. The unique key lets one process win; the
   winner builds everyone's message and stores it as pending deliveries in the same
   transaction, so a run either exists with all its messages or not at all.
2. Send: each delivery is marked "sending" (committed) before the push and "sent" after.
   The claim is a lease: a process that dies leaves it to run out, and whoever takes the
   run over later (another process, or this one after a restart) sends what is not "sent".
   A delivery caught in "sending" is pushed again with the same idempotency key, which
   every channel turns into a no-op if the first push did land (app/channels/push.py).
3. A run for an earlier day is never sent late: the morning's list is stale by noon.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text, update
from sqlmodel import Session, col, select

from app.channels.push import (
    PushButton,
    Pusher,
    PushError,
    PushItem,
    PushMessage,
    PushUnavailable,
)
from app.clock import Clock
from app.config import Settings
from app.db import insert_for, read_session, write_session
from app.digest.build import build_digest
from app.digest.models import DigestDelivery, DigestRun
from app.shops.models import Shop

log = logging.getLogger(__name__)


def _lease(settings: Settings) -> timedelta:
    return timedelta(seconds=max(1, settings.digest_lease_seconds))


def holder_name() -> str:
    """Who holds a claim: host and process, so a restarted process is a new holder."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


@dataclass(frozen=True)
class RunResult:
    shop_id: int
    day: date
    status: str  # sent | partial | skipped_sent | skipped_held
    sent: int = 0
    pending: int = 0


def delivery_key(delivery: DigestDelivery) -> str:
    """The idempotency key of one person's digest: stable across retries and restarts."""
    return f"digest:{delivery.run_id}:{delivery.staff_id}"


def _claim(
    engine: Engine, *, shop_id: int, day: date, settings: Settings, clock: Clock, holder: str
) -> DigestRun | None:
    """The run for (shop, day) if this holder may send it now, else None."""
    now = clock.now()
    with write_session(engine) as session:
        if engine.dialect.name == "postgresql":
            # Another process building this shop's digest holds the key until it commits;
            # without this the insert below would queue behind its whole build.
            key = shop_id * 1_000_000 + day.toordinal()
            if not session.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}
            ).scalar():
                return None
        inserted = session.execute(
            insert_for(engine.dialect.name)(DigestRun)
            .values(
                shop_id=shop_id,
                run_date=day,
                status="sending",
                claimed_by=holder,
                lease_until=now + _lease(settings),
                item_count=0,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["shop_id", "run_date"])
            .returning(col(DigestRun.id))
        ).scalar()
        if inserted is not None:
            run = session.get(DigestRun, inserted)
            assert run is not None
            _build_deliveries(session, run, settings=settings, clock=clock)
            session.flush()
            session.expunge(run)
            return run
        run = session.exec(
            select(DigestRun)
            .where(DigestRun.shop_id == shop_id, DigestRun.run_date == day)
            .with_for_update()
        ).one()
        if run.status == "sent":
            return None
        if run.claimed_by != holder and run.lease_until > now:
            return None  # someone alive is on it
        run.claimed_by = holder
        run.lease_until = now + _lease(settings)
        session.add(run)
        session.flush()
        session.expunge(run)
        return run


def _build_deliveries(
    session: Session, run: DigestRun, *, settings: Settings, clock: Clock
) -> None:
    shop = session.get(Shop, run.shop_id)
    assert shop is not None and run.id is not None
    digest = build_digest(
        session=session, shop=shop, day=run.run_date, settings=settings, clock=clock, persist=True
    )
    run.item_count = len(digest.items)
    session.add(run)
    for person in digest.people:
        assert person.staff.id is not None
        message = person.push_message(key="")
        session.add(
            DigestDelivery(
                run_id=run.id,
                shop_id=run.shop_id,
                staff_id=person.staff.id,
                title=person.title,
                text=person.text,
                items=[asdict(item) for item in message.items],
            )
        )


def _message(delivery: DigestDelivery) -> PushMessage:
    items = tuple(
        PushItem(
            followup_id=int(i["followup_id"]),
            number=int(i["number"]),
            title=str(i["title"]),
            description=str(i["description"]),
            url=i.get("url"),
            buttons=tuple(PushButton(key=b["key"], text=b["text"]) for b in i.get("buttons", [])),
        )
        for i in delivery.items
    )
    return PushMessage(
        key=delivery_key(delivery),
        shop_id=delivery.shop_id,
        staff_id=delivery.staff_id,
        title=delivery.title,
        text=delivery.text,
        items=items,
    )


def _push(pushers: list[Pusher], message: PushMessage) -> tuple[str | None, str]:
    """Try the channels in order; (channel that took it, or None, and the last error)."""
    error = "no channel can reach this person"
    for pusher in pushers:
        if not pusher.can_reach(shop_id=message.shop_id, staff_id=message.staff_id):
            continue
        try:
            receipt = pusher.push(message)
        except PushUnavailable as exc:
            error = f"{pusher.name}: {exc}"
            continue  # this channel cannot: the next one may (WeChat window closed -> SMS)
        except PushError as exc:
            return None, f"{pusher.name}: {exc}"  # try again later, same channel first
        if receipt.accepted:
            return pusher.name, ""
        error = f"{pusher.name}: {receipt.detail}"
    return None, error


def run_digest(
    *,
    engine: Engine,
    shop_id: int,
    day: date,
    settings: Settings,
    clock: Clock,
    pushers: list[Pusher],
    holder: str | None = None,
) -> RunResult:
    """Build (once) and send (what is unsent) the shop's digest for `day`."""
    holder = holder or holder_name()
    run = _claim(engine, shop_id=shop_id, day=day, settings=settings, clock=clock, holder=holder)
    if run is None:
        with read_session(engine) as session:
            status = session.exec(
                select(DigestRun.status).where(
                    DigestRun.shop_id == shop_id, DigestRun.run_date == day
                )
            ).first()  # None: another process is still building it
        return RunResult(shop_id, day, "skipped_sent" if status == "sent" else "skipped_held")
    assert run.id is not None
    with read_session(engine) as session:
        deliveries = list(
            session.exec(
                select(DigestDelivery)
                .where(DigestDelivery.run_id == run.id, DigestDelivery.status != "sent")
                .order_by(col(DigestDelivery.id))
            )
        )
    sent = pending = 0
    for delivery in deliveries:
        assert delivery.id is not None
        with write_session(engine) as session:
            # Still ours? (a lease can run out during a slow push; then stop and let the
            # new holder carry on rather than race it)
            claimed = session.execute(
                update(DigestRun)
                .where(col(DigestRun.id) == run.id, col(DigestRun.claimed_by) == holder)
                .values(lease_until=clock.now() + _lease(settings))
            ).rowcount  # type: ignore[attr-defined]
            if not claimed:
                return RunResult(shop_id, day, "skipped_held", sent, len(deliveries) - sent)
            session.execute(
                update(DigestDelivery)
                .where(col(DigestDelivery.id) == delivery.id)
                .values(status="sending", attempts=col(DigestDelivery.attempts) + 1)
            )
        channel, error = _push(pushers, _message(delivery))
        with write_session(engine) as session:
            if channel is not None:
                session.execute(
                    update(DigestDelivery)
                    .where(col(DigestDelivery.id) == delivery.id)
                    .values(status="sent", channel=channel, sent_at=clock.now(), error=None)
                )
                sent += 1
            else:
                log.warning("digest %s for staff %s not sent: %s", run.id, delivery.staff_id, error)
                session.execute(
                    update(DigestDelivery)
                    .where(col(DigestDelivery.id) == delivery.id)
                    .values(status="pending", error=error[:500])
                )
                pending += 1
    with write_session(engine) as session:
        left = session.exec(
            select(DigestDelivery.id).where(
                DigestDelivery.run_id == run.id, DigestDelivery.status != "sent"
            )
        ).first()
        if left is None:
            session.execute(
                update(DigestRun)
                .where(col(DigestRun.id) == run.id)
                .values(status="sent", finished_at=clock.now())
            )
        else:
            # Let the next tick (any process) retry soon.
            session.execute(
                update(DigestRun)
                .where(col(DigestRun.id) == run.id, col(DigestRun.claimed_by) == holder)
                .values(lease_until=clock.now())
            )
    return RunResult(shop_id, day, "sent" if left is None else "partial", sent, pending)


def due_shops(
    *, engine: Engine, clock: Clock, settings: Settings, shop_id: int | None = None
) -> list[tuple[int, date]]:
    """Shops (or the one shop) whose digest time has passed today, their local day, and
    whose run is not sent: two queries however many shops there are."""
    now = clock.now()
    with read_session(engine) as session:
        query = select(Shop)
        if shop_id is not None:
            query = query.where(Shop.id == shop_id)
        passed: list[tuple[int, date]] = []
        for shop in session.exec(query):
            assert shop.id is not None
            local = now.astimezone(ZoneInfo(shop.timezone))
            if (local.hour, local.minute) >= digest_time(shop, settings):
                passed.append((shop.id, local.date()))
        if not passed:
            return []
        sent = {
            (sid, day)
            for sid, day in session.exec(
                select(col(DigestRun.shop_id), col(DigestRun.run_date)).where(
                    col(DigestRun.run_date) >= min(day for _, day in passed),
                    DigestRun.status == "sent",
                )
            )
        }
    return [due for due in passed if due not in sent]


def digest_time(shop: Shop, settings: Settings) -> tuple[int, int]:
    """The shop's digest hour and minute (settings["digest_time"], else the default)."""
    raw = str(shop.settings.get("digest_time") or settings.digest_time)
    try:
        hour, minute = (int(p) for p in raw.split(":", 1))
    except ValueError:
        hour, minute = 8, 0
    if not (0 <= hour < 24 and 0 <= minute < 60):
        hour, minute = 8, 0
    return hour, minute
