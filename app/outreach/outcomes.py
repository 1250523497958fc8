"""Recording what came of a follow-up: a tap, a numbered reply, a chat command, a new order.

Every outcome updates the follow-up row (for the reports: which tier, which template, what
it cost, what came of it) and appends the matching event (for the risk engine: an outreach,
a reaction, a win-back, a loss, a pause), in the caller's transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Exists, bindparam, exists, literal
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.clock import Clock, from_utc
from app.customers.models import Customer
from app.events.models import Event
from app.events.service import log_event
from app.orders.models import Order
from app.outreach.models import CONTACT_OUTCOMES, OUTCOMES, FollowUp
from app.outreach.tiers import LOSS_REASONS, loss_reason_code
from app.shops.models import Shop, Staff

RECALLED_TAG = "召回客户"
# An order this long after the last contact is no longer credited to it.
ATTRIBUTION_DAYS = 60
MAX_AWAY_DAYS = 366
MAX_COST_CENTS = 10_000_000

# The owner's words for what happened, as the tap labels and chat replies say them.
OUTCOME_LABELS = {
    "sent": "已发消息",
    "warm": "回复了(热情)",
    "none": "没回",
    "cold": "回得冷淡",
    "called": "打过电话",
    "visited": "上门/给了优惠",
    "recovered": "已挽回",
    "returned": "自己回来了",
    "lost": "流失",
    "away": "出门了,暂停提醒",
}
# Reasons as the lost-reason buttons show them (water wording; shops may reword in templates).
REASON_WORDS = {
    "price": "价格",
    "service": "服务不及时",
    "quality": "质量",
    "competitor": "别家",
    "forgot": "忘了",
    "distance": "距离远",
    "moved": "搬家/倒闭",
    "other": "其他",
}
# The label the risk engine and the monthly report know each reason by (app/bot/parse.REASONS).
_EVENT_REASON = {
    "price": "价格",
    "service": "服务不及时",
    "quality": "水质",
    "competitor": "竞争对手",
    "forgot": "其他",
    "distance": "其他",
    "moved": "搬家/倒闭",
    "other": "其他",
}
_TAP_KEY = re.compile(r"^fu:(\d{1,12}):([a-z]{3,9})(?::([a-z0-9]{1,12}))?$")


class OutcomeError(ValueError):
    """An outcome that cannot be recorded; the message is for the owner, in Chinese."""


class TapError(OutcomeError):
    """A tap key that is malformed, unknown or not this person's to use."""


def tap_key(followup_id: int, outcome: str, arg: str | None = None) -> str:
    """The key a button carries: fu:123:sent, fu:123:lost:price, fu:123:away:7."""
    return f"fu:{followup_id}:{outcome}" + (f":{arg}" if arg else "")


@dataclass(frozen=True)
class Recorded:
    """What was recorded, for the confirmation the owner sees."""

    followup: FollowUp
    customer: Customer
    outcome: str
    label: str
    cost_cents: int = 0  # the offer cost this record added
    reason: str | None = None  # the reason code on record (what a call or a loss found out)


def _local_today(shop: Shop, clock: Clock) -> date:
    return clock.now().astimezone(ZoneInfo(shop.timezone)).date()


def _local_day(moment: datetime, tz: ZoneInfo) -> date:
    """A stored moment (naive means UTC, as SQLite returns it) as the shop's date."""
    return from_utc(moment).astimezone(tz).date()


def record_outcome(
    *,
    session: Session,
    shop: Shop,
    followup: FollowUp,
    outcome: str,
    clock: Clock,
    staff_id: int | None,
    source: str = "chat",
    reason: str | None = None,
    away_until: date | None = None,
    cost_cents: int | None = None,
    inbox_id: int | None = None,
) -> Recorded:
    """Record one outcome on a follow-up and log the event the risk engine reads."""
    if followup.shop_id != shop.id:
        raise OutcomeError("这条跟进不属于本店")
    if outcome not in OUTCOMES:
        raise OutcomeError(f"不认识的结果:{outcome}")
    if followup.status == "closed":
        done = OUTCOME_LABELS.get(followup.outcome or "", followup.outcome or "")
        raise OutcomeError(f"这条跟进已经结束了(记的是:{done}),不用再记。")
    if cost_cents is not None and not 0 <= cost_cents <= MAX_COST_CENTS:
        raise OutcomeError("优惠花费需在0到10万元之间")
    customer = session.get(Customer, followup.customer_id)
    if customer is None or customer.shop_id != shop.id:
        raise OutcomeError("找不到这位客户")
    today = _local_today(shop, clock)
    reason_code = loss_reason_code(reason)
    if outcome == "lost" and reason_code is None:
        raise OutcomeError("记流失需要一个原因:价格、服务不及时、质量、别家、搬家/倒闭、其他")
    latest_away = today + timedelta(days=MAX_AWAY_DAYS)
    if outcome == "away" and (away_until is None or not today < away_until <= latest_away):
        raise OutcomeError("暂停需要一个以后的日期(一年以内)")
    now = clock.now()
    base = {
        "followup_id": followup.id,
        "tier": followup.tier,
        "template": followup.template,
        # So 撤销 can put the follow-up back as it was (app/bot/ledger.undo).
        "followup_before": _snapshot(followup),
    }
    common = {
        "session": session,
        "shop_id": shop.id,
        "clock": clock,
        "customer_id": customer.id,
        "source": source,
        "staff_id": staff_id,
        "inbox_id": inbox_id,
    }
    if outcome in CONTACT_OUTCOMES:
        if followup.first_contact_at is None:
            followup.first_contact_at = now
            # The first contact of a follow-up is an outreach for the engine's ignored streak.
            data = {**base, "kind": followup.kind}
            if reason_code is not None:
                data["reason"] = reason_code
            log_event(kind="outreach", data=data, **common)  # type: ignore[arg-type]
        followup.status = "contacted"
        if outcome in ("warm", "none", "cold"):
            log_event(kind="interaction", data={**base, "reaction": outcome}, **common)  # type: ignore[arg-type]
        elif outcome in ("called", "visited"):
            # A call or visit that was made reached the customer (no answer is 没回): their
            # silence streak ends, whatever they said.
            log_event(kind="interaction", data={**base, "reaction": "reached"}, **common)  # type: ignore[arg-type]
        if reason_code is not None:
            followup.outcome_reason = reason_code  # what the call found out: opens tier 3
    elif outcome == "recovered":
        followup.status = "closed"
        log_event(
            kind="outcome",
            data={**base, "outcome": "recovered", "before": {"status": customer.status}},
            **common,  # type: ignore[arg-type]
        )
        _mark_recalled(customer)
    elif outcome == "lost":
        assert reason_code is not None
        followup.status = "closed"
        followup.outcome_reason = reason_code
        log_event(
            kind="outcome",
            data={
                **base,
                "outcome": "lost",
                "reason": _EVENT_REASON[reason_code],
                "unavoidable": reason_code == "moved",
                "before": {"status": customer.status},
            },
            **common,  # type: ignore[arg-type]
        )
        customer.status = "lost"
    elif outcome == "away":
        assert away_until is not None
        followup.status = "closed"
        followup.away_until = away_until
        before = customer.paused_until.isoformat() if customer.paused_until else None
        log_event(
            kind="pause",
            data={**base, "until": away_until.isoformat(), "before": {"paused_until": before}},
            **common,  # type: ignore[arg-type]
        )
        customer.paused_until = away_until
    else:  # "returned" is only ever set by an order (on_order), never by hand
        raise OutcomeError("“自己回来了”由新订单自动记录")
    if cost_cents:
        followup.cost_cents += cost_cents
    followup.outcome = outcome
    followup.outcome_at = now
    followup.outcome_staff_id = staff_id
    session.add(followup)
    session.add(customer)
    session.flush()
    return Recorded(
        followup,
        customer,
        outcome,
        OUTCOME_LABELS[outcome],
        cost_cents or 0,
        reason=followup.outcome_reason if reason_code is not None else None,
    )


def add_offer_cost(
    *,
    session: Session,
    shop: Shop,
    staff: Staff,
    followup_id: int,
    cost_cents: int,
    clock: Clock,
    source: str,
    inbox_id: int | None = None,
) -> Recorded:
    """What an offer cost (a voucher, a gift), added to a follow-up on its own.

    Unlike an outcome this is accepted on a closed follow-up too: the make-good is often
    handed over with the order that won the customer back. It feeds the ROI report only;
    the risk engine never reads it. 撤销 takes it back like any other write.
    """
    followup = session.get(FollowUp, followup_id)
    if followup is None or followup.shop_id != shop.id or not may_act_on(staff, followup):
        raise TapError("找不到这条跟进,或者它不归您处理")
    if not 0 < cost_cents <= MAX_COST_CENTS:
        raise OutcomeError("优惠花费需在0到10万元之间")
    if followup.cost_cents + cost_cents > MAX_COST_CENTS:
        raise OutcomeError("这条跟进记的优惠花费已经超过10万元了,请核对一下")
    customer = session.get(Customer, followup.customer_id)
    if customer is None or customer.shop_id != shop.id:
        raise OutcomeError("找不到这位客户")
    log_event(
        session=session,
        shop_id=shop.id,
        clock=clock,
        customer_id=customer.id,
        kind="offer_cost",
        data={
            "followup_id": followup.id,
            "tier": followup.tier,
            "template": followup.template,
            "cost_cents": cost_cents,
            "followup_before": _snapshot(followup),
        },
        source=source,
        staff_id=staff.id,
        inbox_id=inbox_id,
    )
    followup.cost_cents += cost_cents
    session.add(followup)
    session.flush()
    return Recorded(followup, customer, "cost", "优惠花费", cost_cents)


_SNAPSHOT_FIELDS = (
    "status", "outcome", "outcome_reason", "away_until", "cost_cents", "first_contact_at",
    "outcome_at", "outcome_staff_id",
)  # fmt: skip


def _snapshot(followup: FollowUp) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in _SNAPSHOT_FIELDS:
        value = getattr(followup, name)
        out[name] = value.isoformat() if isinstance(value, date) else value
    return out


def undo_followups(*, session: Session, events: list[Event]) -> None:
    """Put follow-ups back as they were before the events of an undone message."""
    seen: set[int] = set()
    for event in sorted(events, key=lambda e: e.id or 0):
        before = (event.data or {}).get("followup_before")
        followup_id = (event.data or {}).get("followup_id")
        if not before or followup_id is None or followup_id in seen:
            continue
        seen.add(int(followup_id))
        followup = session.get(FollowUp, int(followup_id))
        if followup is None or followup.shop_id != event.shop_id:
            continue
        for name in _SNAPSHOT_FIELDS:
            value = before.get(name)
            if name == "away_until" and value:
                value = date.fromisoformat(str(value))
            elif name in ("first_contact_at", "outcome_at") and value:
                value = datetime.fromisoformat(str(value))
            setattr(followup, name, value)
        session.add(followup)


def _mark_recalled(customer: Customer) -> None:
    customer.status = "active"
    if RECALLED_TAG not in customer.tags:
        customer.tags = [*customer.tags, RECALLED_TAG]


def parse_tap_key(key: str) -> tuple[int, str, str | None]:
    """fu:123:lost:price -> (123, "lost", "price"); TapError when it is not a tap key."""
    match = _TAP_KEY.match(key.strip())
    if match is None:
        raise TapError("这个按钮已失效,请在最新的跟进提醒里操作")
    outcome = match.group(2)
    if outcome not in OUTCOMES or outcome == "returned":
        raise TapError("这个按钮已失效,请在最新的跟进提醒里操作")
    return int(match.group(1)), outcome, match.group(3)


def may_act_on(staff: Staff, followup: FollowUp) -> bool:
    """Owners and managers act on every follow-up of their shop; staff on their own."""
    if staff.shop_id != followup.shop_id:
        return False
    return staff.role in ("owner", "manager") or followup.assigned_staff_id == staff.id


def apply_choice(
    *,
    session: Session,
    shop: Shop,
    staff: Staff,
    followup_id: int,
    outcome: str,
    arg: str | None,
    clock: Clock,
    source: str,
    inbox_id: int | None = None,
    cost_cents: int | None = None,
) -> Recorded:
    """One tapped choice on one follow-up, after checking it is this person's to make."""
    followup = session.get(FollowUp, followup_id)
    if followup is None or followup.shop_id != shop.id or not may_act_on(staff, followup):
        # Another shop's item and a missing one look the same: nothing is revealed.
        raise TapError("找不到这条跟进,或者它不归您处理")
    reason = away_until = None
    if outcome == "lost":
        if arg not in LOSS_REASONS:
            raise TapError("请选一个流失原因")
        reason = arg
    elif outcome == "away":
        days = int(arg) if arg and arg.isdigit() else 0
        if not 1 <= days <= MAX_AWAY_DAYS:
            raise TapError("请选暂停多少天")
        away_until = _local_today(shop, clock) + timedelta(days=days)
    elif arg is not None and outcome in ("called", "visited") and arg in LOSS_REASONS:
        reason = arg  # what the call or the visit found out
    return record_outcome(
        session=session,
        shop=shop,
        followup=followup,
        outcome=outcome,
        clock=clock,
        staff_id=staff.id,
        source=source,
        reason=reason,
        away_until=away_until,
        cost_cents=cost_cents,
        inbox_id=inbox_id,
    )


def record_tap(
    *, session: Session, shop: Shop, staff: Staff, key: str, clock: Clock, source: str
) -> str:
    """A button tap (WeCom card, OA menu): record it and say what was recorded."""
    followup_id, outcome, arg = parse_tap_key(key)
    try:
        recorded = apply_choice(
            session=session,
            shop=shop,
            staff=staff,
            followup_id=followup_id,
            outcome=outcome,
            arg=arg,
            clock=clock,
            source=source,
        )
    except TapError:
        raise
    except OutcomeError as exc:
        raise TapError(str(exc)) from exc
    return confirmation(recorded)


def confirmation(recorded: Recorded) -> str:
    """已记:老郭 打过电话,原因:价格,优惠花费20元 ✓ — everything that was recorded, no more
    (plain, short: it replaces a card's buttons)."""
    label = recorded.label
    reason = recorded.reason
    if recorded.outcome == "lost" and recorded.followup.outcome_reason:
        label = f"流失·{REASON_WORDS[recorded.followup.outcome_reason]}"
        reason = None  # already in the label
    if recorded.outcome == "away" and recorded.followup.away_until:
        until = recorded.followup.away_until
        label = f"暂停到{until.month}月{until.day}日"
    if recorded.outcome == "cost":
        return f"已记:{recorded.customer.name} 优惠花费{_yuan(recorded.cost_cents)} ✓"
    said = f",原因:{REASON_WORDS[reason]}" if reason in REASON_WORDS else ""
    cost = f",优惠花费{_yuan(recorded.cost_cents)}" if recorded.cost_cents else ""
    return f"已记:{recorded.customer.name} {label}{said}{cost} ✓"


def _yuan(cents: int) -> str:
    return f"{cents // 100}元" if cents % 100 == 0 else f"{cents / 100:.2f}元"


_FOLLOWUPS = FollowUp.__table__  # type: ignore[attr-defined]


def followup_pending(customer_id: ColumnElement[int]) -> Exists:
    """Whether the customer has a follow-up an order would answer: EXISTS, for any query."""
    return exists().where(
        _FOLLOWUPS.c.customer_id == customer_id,
        # IN (?, ?), not an expanding IN: that one is rewritten on every execution (~45 µs).
        _FOLLOWUPS.c.status.in_([literal("open"), literal("contacted")]),
        _FOLLOWUPS.c.tier > 0,
    )


# Built once: an order whose caller did not read it already asks it.
_ANY_PENDING = sa_select(followup_pending(bindparam("cid")))


def on_order(
    *,
    session: Session,
    shop: Shop,
    customer: Customer,
    order: Order,
    has_pending: bool | None = None,
) -> None:
    """A new order closes the customer's follow-up: a win-back if we had reached out.

    Called by flows.record_order before it reassesses the customer, so the "outcome" event is
    added without a reassessment of its own (the order's follows in the same transaction).
    `has_pending` is `followup_pending` as the caller read it in this transaction (None:
    ask here).
    """
    assert shop.id is not None and customer.id is not None and order.id is not None
    if has_pending is None:
        # Most orders come from customers nobody is following up: one indexed probe, no ORM.
        probe = session.connection().execute(_ANY_PENDING, {"cid": customer.id})
        has_pending = bool(probe.scalar())
    if not has_pending:
        return
    since = order.order_date - timedelta(days=ATTRIBUTION_DAYS)
    pending = list(
        session.exec(
            select(FollowUp)
            .where(
                FollowUp.customer_id == customer.id,
                col(FollowUp.status).in_(("open", "contacted")),
                FollowUp.tier > 0,  # a care check on a won-back customer is not a new win-back
            )
            .order_by(col(FollowUp.created_on).desc(), col(FollowUp.id).desc())
        )
    )
    recent = [f for f in pending if f.created_on >= since]
    # The win-back goes to the last rung that actually reached the customer before the order:
    # an order dated before the contact ("陶阿姨 3桶 前天") came back on its own.
    tz = ZoneInfo(shop.timezone)
    contacted = [
        f
        for f in recent
        if f.status == "contacted"
        and f.first_contact_at is not None
        and _local_day(f.first_contact_at, tz) <= order.order_date
    ]
    followup = contacted[0] if contacted else (recent[0] if recent else None)
    credited = bool(contacted)
    for row in pending:
        # Every proposal still open is answered by the order, whichever closes it.
        row.status = "closed"
        row.recovered_order_id = order.id
        row.outcome_at = order.created_at
        if row is followup:
            row.outcome = "recovered" if credited else "returned"
        elif row.outcome is None:
            row.outcome = "returned"
        session.add(row)
    if followup is None or not credited:
        return
    # Credit the last tier and template, and start the 90-day close watch (the engine reads
    # the recovered outcome as "recently recalled").
    session.add(
        Event(
            shop_id=shop.id,
            customer_id=customer.id,
            kind="outcome",
            occurred_at=order.ordered_at,
            data={
                "outcome": "recovered",
                "followup_id": followup.id,
                "tier": followup.tier,
                "template": followup.template,
                "order_id": order.id,
                "attributed": True,
                "before": {"status": customer.status},
            },
            source="order",
            staff_id=order.created_by_staff_id,
            inbox_id=order.inbox_id,
        )
    )
    _mark_recalled(customer)
    session.add(customer)


def undo_orders(*, session: Session, order_ids: list[int]) -> None:
    """An order is being undone: reopen the follow-ups it closed (their events go with the
    undo, which cancels every event of the same message)."""
    if not order_ids:
        return
    for followup in session.exec(
        select(FollowUp).where(col(FollowUp.recovered_order_id).in_(order_ids))
    ):
        contacted = followup.first_contact_at is not None
        followup.status = "contacted" if contacted else "open"
        followup.outcome = "sent" if contacted else None
        followup.outcome_at = followup.first_contact_at
        followup.recovered_order_id = None
        session.add(followup)
    session.flush()


# --- what came of past contacts, for the card, the chat list and the digest ----------------

CONTACTS_SHOWN = 3
# Contacts older than this are another story; the card and the lists leave them out.
CONTACT_HISTORY_DAYS = 180
# Chunks of customer ids per read (SQLite allows a few thousand bound parameters).
_IDS_PER_READ = 500


@dataclass(frozen=True)
class Contact:
    """One follow-up that reached the customer (or closed them), as the owner recorded it."""

    on: date  # the day of the contact (or of the closing, when nobody reached them)
    tier: int
    outcome: str
    reason: str | None  # a LOSS_REASONS code: what the call or the loss found out
    cost_cents: int

    @property
    def cost_yuan(self) -> int:
        """What it cost, in whole 元 as owners are told money."""
        return round(self.cost_cents / 100)


def recent_contacts(
    *,
    session: Session,
    shop: Shop,
    customer_ids: list[int],
    today: date,
    limit: int = CONTACTS_SHOWN,
) -> dict[int, list[Contact]]:
    """Each customer's last few recorded contacts, newest first (customers with none left out)."""
    tz = ZoneInfo(shop.timezone)
    since = today - timedelta(days=CONTACT_HISTORY_DAYS)
    found: dict[int, list[tuple[date, int, Contact]]] = {}
    for start in range(0, len(customer_ids), _IDS_PER_READ):
        chunk = customer_ids[start : start + _IDS_PER_READ]
        rows = session.exec(
            select(FollowUp).where(
                FollowUp.shop_id == shop.id,
                col(FollowUp.customer_id).in_(chunk),
                col(FollowUp.outcome).is_not(None),
                col(FollowUp.created_on) >= since,
            )
        )
        for row in rows:
            if row.outcome is None or (row.first_contact_at is None and row.outcome == "returned"):
                continue  # came back before anyone reached them: not a contact
            moment = row.first_contact_at or row.outcome_at
            if moment is None:
                continue
            on = _local_day(moment, tz)
            if on > today:
                continue
            contact = Contact(on, row.tier, row.outcome, row.outcome_reason, row.cost_cents)
            found.setdefault(row.customer_id, []).append((on, row.id or 0, contact))
    return {
        cid: [c for _, _, c in sorted(rows, key=lambda r: (r[0], r[1]), reverse=True)[:limit]]
        for cid, rows in found.items()
    }
