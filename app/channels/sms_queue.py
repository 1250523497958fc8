"""Owner-confirmed texts to customers, queued by the bot and sent outside its transaction.

The bot's write transaction only records an `sms_message` row with status `queued` (the
SMS client opens transactions of its own, and SQLite has one writer). `SmsQueueSender`
sends what is queued: woken right after the bot's transaction commits (`wake_after_commit`
in app/outreach/sms.py) and every `interval_seconds` (a process that queued a text and
died before sending it is caught up by any running server). A text that went out is
recorded as the follow-up's outcome "sent" (source "sms"); a refusal (opted out, over
the number's limit) or a provider failure becomes the row's status and a short push to
whoever confirmed it.

The rows, their statuses and keys are outreach's (app/outreach/sms.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from app.channels.binding import channel_message
from app.channels.push import PushError
from app.channels.sms import SmsClient, send_outreach_sms
from app.clock import Clock
from app.customers.models import Customer
from app.db import read_session, write_session
from app.outreach.sms import (
    KEY,
    QUEUE_WOKEN,
    QUEUED,
    REFUSED,
    SmsMessage,
    SmsRefused,
    Target,
    parse_key,
)
from app.shops.models import Shop, Staff

log = logging.getLogger(__name__)

# (shop id, staff id, text, idempotency key): tell whoever confirmed a text what became of it.
Notify = Callable[[int, int, str, str], None]


class SmsQueueSender:
    """Sends queued outreach texts; one thread per app process."""

    def __init__(
        self,
        *,
        sms: SmsClient,
        engine: Engine,
        clock: Clock,
        notify: Notify,
        interval_seconds: float = 5.0,
    ) -> None:
        self.sms = sms
        self.engine = engine
        self.clock = clock
        self.notify = notify
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def drain_once(self, limit: int = 50) -> int:
        """Send what is queued; how many rows were settled (sent, refused or failed)."""
        with self._lock:
            with read_session(self.engine) as session:
                keys = list(
                    session.exec(
                        select(SmsMessage.key)
                        .where(SmsMessage.status == QUEUED, SmsMessage.purpose == "outreach")
                        .order_by(col(SmsMessage.id))
                        .limit(limit)
                    )
                )
            return sum(1 for key in keys if self._send_one(key))

    def _take(self, key: str) -> SmsMessage | None:
        """Move the row from queued to sending; None if another process took it first."""
        with write_session(self.engine) as session:
            result = session.execute(
                update(SmsMessage)
                .where(col(SmsMessage.key) == key, col(SmsMessage.status) == QUEUED)
                .values(status="sending")
            )
            taken = result.rowcount  # type: ignore[attr-defined]
            if taken != 1:
                return None
            row = session.exec(select(SmsMessage).where(SmsMessage.key == key)).one()
            session.expunge(row)
            return row

    def _send_one(self, key: str) -> bool:
        row = self._take(key)
        if row is None:
            return False
        target = parse_key(key)
        with read_session(self.engine) as session:
            shop = session.get(Shop, row.shop_id) if row.shop_id else None
            staff = session.get(Staff, target.staff_id) if target else None
            customer = self._customer(session, row, target)
        if shop is None or staff is None or customer is None or target is None:
            self._settle(key, REFUSED, "找不到这位客户或确认的人")
            return True
        try:
            receipt = send_outreach_sms(
                sms=self.sms, shop=shop, customer=customer, confirmed_by=staff,
                key=key.removeprefix("outreach:"),
            )  # fmt: skip
        except SmsRefused as exc:
            self._settle(key, REFUSED, str(exc))
            self._tell(key, shop, staff, customer, str(exc))
            return True
        except PushError as exc:  # the client marked the row failed
            log.warning("outreach text %s failed: %s", key, exc)
            self._tell(key, shop, staff, customer, "短信平台这次没发出去")
            return True
        if not receipt.duplicate and target.followup_id is not None:
            self._record_sent(shop, staff, target.followup_id)
        return True

    def _customer(
        self, session: Session, row: SmsMessage, target: Target | None
    ) -> Customer | None:
        if target is None:
            return None
        if target.followup_id is not None:
            from app.outreach.models import FollowUp

            followup = session.get(FollowUp, target.followup_id)
            customer_id = followup.customer_id if followup else None
        else:
            match = KEY.match(row.key)
            customer_id = int(match["cu"]) if match else None
        customer = session.get(Customer, customer_id) if customer_id else None
        return customer if customer is not None and customer.shop_id == row.shop_id else None

    def _settle(self, key: str, status: str, error: str) -> None:
        with write_session(self.engine) as session:
            row = session.exec(select(SmsMessage).where(SmsMessage.key == key)).one()
            row.status = status
            row.error = error[:500] or None
            session.add(row)

    def _record_sent(self, shop: Shop, staff: Staff, followup_id: int) -> None:
        """The text went out: the follow-up's tier-1 outcome is "sent" (unless one is set)."""
        from app.outreach.models import FollowUp
        from app.outreach.outcomes import OutcomeError, record_outcome

        try:
            with write_session(self.engine) as session:
                followup = session.get(FollowUp, followup_id)
                current = session.get(Shop, shop.id)
                if followup is None or current is None or followup.outcome is not None:
                    return
                record_outcome(
                    session=session, shop=current, followup=followup, outcome="sent",
                    clock=self.clock, staff_id=staff.id, source="sms",
                )  # fmt: skip
        except OutcomeError as exc:
            log.info("outreach text sent; outcome not recorded: %s", exc)

    def _tell(self, key: str, shop: Shop, staff: Staff, customer: Customer, why: str) -> None:
        assert shop.id is not None and staff.id is not None
        text = channel_message(
            self.sms.settings.templates_dir, "sms_refused", shop=shop,
            customer_name=customer.name, why=why,
        ).strip()  # fmt: skip
        try:
            self.notify(shop.id, staff.id, text, f"sms-notice:{key}")
        except Exception:
            log.exception("telling staff %s about text %s failed", staff.id, key)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="huitou-sms", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain_once()
            except Exception:
                log.exception("sms queue: round failed")
            QUEUE_WOKEN.wait(self.interval_seconds)
            QUEUE_WOKEN.clear()

    def stop(self) -> None:
        self._stop.set()
        QUEUE_WOKEN.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sms.http.close()
