"""Today's follow-ups for a shop: facts from the database, steps from the pure ladder.

`plan_day` reads in a handful of set-based queries (due customers by the check_on index,
recent outreach events, recent win-backs) and never per customer, so a 10,000-customer
shop plans in well under a second. `save_plan` turns the plan into follow-up rows the
taps refer to, reusing a still-open proposal instead of piling up a new one each morning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.clock import Clock
from app.customers.models import Customer, CustomerSummary
from app.customers.service import due_customers
from app.events.holdings import script_facts
from app.events.models import Event
from app.events.service import undone_event_ids
from app.outreach.models import FollowUp
from app.outreach.outcomes import CONTACTS_SHOWN, Contact, recent_contacts
from app.outreach.render import CustomerHistory
from app.outreach.tiers import (
    CLV_TIERS,
    OutreachFacts,
    Policy,
    Step,
    clv_tier,
    due_today,
    loss_reason_code,
    next_step,
)
from app.risk.assess import Stage, stage_on
from app.shops.models import Shop, Staff

# Outreach older than this cannot be part of the current episode's ladder.
HISTORY_DAYS = 180
_OUTREACH_KINDS = ("outreach", "interaction", "outcome")
# Customer kinds addressed as a company (贵公司), not a household (您家).
COMPANY_KINDS = frozenset({"office", "business"})


def policy_for(shop: Shop) -> Policy:
    """The shop's outreach settings (settings["outreach"]), validated."""
    raw = dict(shop.settings.get("outreach") or {})
    for key in ("high_value_classes", "high_value_tiers", "offer_reasons"):
        if key in raw:
            raw[key] = tuple(raw[key])
    return Policy(**raw)


@dataclass(frozen=True)
class PlannedItem:
    """One customer to contact today: the step, the figures behind it, who does it."""

    customer: Customer
    summary: CustomerSummary
    stage: Stage
    step: Step
    facts: OutreachFacts
    assignee_id: int  # the staff member whose list it goes on

    @property
    def days_since_last(self) -> int | None:
        return self.facts.days_since_last

    @property
    def overdue_days(self) -> int | None:
        if self.facts.days_since_last is None or self.facts.expected_interval_days is None:
            return None
        return max(0, self.facts.days_since_last - round(self.facts.expected_interval_days))


@dataclass
class _History:
    last_tier: int | None = None
    last_on: date | None = None
    reaction: str | None = None
    loss_reason: str | None = None
    recalled_on: date | None = None


_HISTORY = (
    sa_select(
        col(Event.id),
        col(Event.customer_id),
        col(Event.kind),
        col(Event.occurred_at),
        col(Event.data),
    )
    .where(
        col(Event.shop_id) == bindparam("shop"),
        col(Event.kind).in_(_OUTREACH_KINDS),
        col(Event.occurred_at) >= bindparam("since"),
    )
    .order_by(col(Event.occurred_at), col(Event.id))
)


def _histories(
    session: Session, shop: Shop, today: date, *, customer_ids: Sequence[int] | None = None
) -> dict[int, _History]:
    """Each customer's latest outreach, reaction, known reason and win-back, from events."""
    tz = ZoneInfo(shop.timezone)
    since = datetime.combine(today - timedelta(days=HISTORY_DAYS), datetime.min.time(), tz)
    undone = undone_event_ids(session, shop.id or 0)
    out: dict[int, _History] = {}
    statement = _HISTORY
    if customer_ids is not None:
        statement = statement.where(col(Event.customer_id).in_(list(customer_ids)))
    for event_id, cid, kind, occurred_at, data in session.execute(
        statement, {"shop": shop.id, "since": since}
    ):
        if cid is None or event_id in undone:
            continue
        day = occurred_at.astimezone(tz).date() if occurred_at.tzinfo else occurred_at.date()
        if day > today:
            continue
        h = out.setdefault(cid, _History())
        data = data or {}
        if kind == "outreach":
            h.last_tier = int(data.get("tier", 1))
            h.last_on = day
            h.reaction = None  # a new contact waits for its own reaction
        elif kind == "interaction":
            reaction = data.get("reaction")
            if reaction in ("warm", "none", "cold"):
                h.reaction = reaction
                if h.last_on is None:
                    # A reaction recorded in chat implies a contact that day (tier 1).
                    h.last_tier, h.last_on = 1, day
        elif kind == "outcome":
            if data.get("outcome") == "recovered":
                h.recalled_on = day
                h.loss_reason = None
            elif data.get("outcome") == "lost":
                h.loss_reason = loss_reason_code(str(data.get("reason") or "")) or None
    return out


def _call_reasons(session: Session, customer_ids: Sequence[int], since: date) -> dict[int, str]:
    """Reasons learnt on calls (a tap "called · price"): they open tier 3 for high value."""
    if not customer_ids:
        return {}
    rows = session.exec(
        select(FollowUp.customer_id, FollowUp.outcome_reason)
        .where(
            col(FollowUp.customer_id).in_(customer_ids),
            col(FollowUp.outcome_reason).is_not(None),
            col(FollowUp.created_on) >= since,
        )
        .order_by(col(FollowUp.created_on), col(FollowUp.id))
    )
    return {cid: reason for cid, reason in rows if reason}


def _facts(
    *,
    today: date,
    summary: CustomerSummary,
    customer: Customer,
    stage: Stage,
    history: _History | None,
    call_reason: str | None,
    industry: str,
) -> OutreachFacts:
    h = history or _History()
    tier = None
    if industry == "car" and summary.clv_cents:
        tier = clv_tier(summary.clv_cents / 100)
    codes = tuple(str(f.get("code")) for f in summary.findings if f.get("code"))
    days_since = (today - summary.last_order_on).days if summary.last_order_on else None
    interval = summary.expected_interval_days
    return OutreachFacts(
        today=today,
        stage=str(stage),
        value_class=customer.value_class,
        value_at_risk_cents=summary.value_at_risk_cents,
        clv_tier=tier if tier in CLV_TIERS else None,
        days_since_last=days_since,
        expected_interval_days=interval,
        overdue_ratio=(days_since / interval) if days_since is not None and interval else None,
        signal_codes=codes,
        warning_on=summary.check_on if stage in (Stage.QUIET, Stage.AT_RISK) else None,
        last_outreach_tier=h.last_tier,
        last_outreach_on=h.last_on,
        last_reaction=h.reaction,
        loss_reason=call_reason or h.loss_reason,
        moved_closed=False,
        paused_until=customer.paused_until,
        recently_recalled=h.recalled_on,
    )


def plan_day(
    *, session: Session, shop: Shop, today: date, policy: Policy | None = None
) -> list[PlannedItem]:
    """Who needs a follow-up today, most at stake first within each tier (tier 3 first)."""
    assert shop.id is not None
    policy = policy or policy_for(shop)
    histories = _histories(session, shop, today)
    candidates: dict[int, tuple[Customer, CustomerSummary, Stage]] = {}
    for due in due_customers(session=session, shop=shop, today=today):
        assert due.customer.id is not None
        candidates[due.customer.id] = (due.customer, due.summary, due.stage)
    # Won-back customers under the 90-day close watch get care checks though they are active.
    watch_start = today - timedelta(days=policy.watch_days)
    watched = [
        cid
        for cid, h in histories.items()
        if h.recalled_on is not None and h.recalled_on >= watch_start and cid not in candidates
    ]
    if watched:
        for summary, customer in session.exec(
            select(CustomerSummary, Customer)
            .join(Customer, col(Customer.id) == col(CustomerSummary.customer_id))
            .where(col(Customer.id).in_(watched), Customer.status == "active")
        ):
            stage = stage_on(
                stored=summary.stage, check_on=summary.check_on, red_on=summary.red_on,
                lost_on=summary.lost_on, today=today,
            )  # fmt: skip
            assert customer.id is not None
            candidates[customer.id] = (customer, summary, stage)
    call_reasons = _call_reasons(session, list(candidates), today - timedelta(days=HISTORY_DAYS))
    owner_id = _owner_id(session, shop)
    staff_ids = _staff_ids(session, shop)
    items: list[PlannedItem] = []
    for cid, (customer, summary, stage) in candidates.items():
        facts = _facts(
            today=today,
            summary=summary,
            customer=customer,
            stage=stage,
            history=histories.get(cid),
            call_reason=call_reasons.get(cid),
            industry=shop.industry,
        )
        step = due_today(facts, policy)
        if step is None:
            continue
        assignee = owner_id
        if step.owner_role == "staff" and customer.assigned_staff_id in staff_ids:
            assignee = int(customer.assigned_staff_id or owner_id)
        items.append(PlannedItem(customer, summary, stage, step, facts, assignee))
    items.sort(
        key=lambda i: (
            -i.step.tier if i.step.tier else 0,  # visits, then calls, messages; care last
            -i.summary.value_at_risk_cents,
            i.customer.id or 0,
        )
    )
    return items


def _owner_id(session: Session, shop: Shop) -> int:
    from app.shops.service import owner_of

    owner = owner_of(session=session, shop=shop)
    assert owner.id is not None
    return owner.id


def _staff_ids(session: Session, shop: Shop) -> set[int]:
    return {s for s in session.exec(select(Staff.id).where(Staff.shop_id == shop.id)) if s}


def save_plan(
    *, session: Session, shop: Shop, items: Iterable[PlannedItem], today: date, clock: Clock
) -> dict[int, FollowUp]:
    """Follow-up rows for today's plan (customer id -> row), reusing open ones."""
    assert shop.id is not None
    planned = list(items)
    ids = [i.customer.id for i in planned if i.customer.id is not None]
    existing: dict[int, FollowUp] = {}
    if ids:
        for open_row in session.exec(
            select(FollowUp)
            .where(
                FollowUp.shop_id == shop.id,
                col(FollowUp.customer_id).in_(ids),
                col(FollowUp.status).in_(("open", "contacted")),
            )
            .order_by(col(FollowUp.created_on), col(FollowUp.id))
        ):
            existing[open_row.customer_id] = open_row  # the newest wins
    now = clock.now()
    out: dict[int, FollowUp] = {}
    for item in planned:
        cid = item.customer.id
        assert cid is not None
        row: FollowUp | None = existing.get(cid)
        same_step = row is not None and row.tier == item.step.tier and row.status == "open"
        if row is not None and (same_step or row.created_on == today):
            # Still the same proposal (nobody acted yet), or already made today: refresh it.
            row.tier, row.kind, row.template = item.step.tier, item.step.kind, item.step.template
            row.reason_code = item.step.reason_code
            row.owner_role = item.step.owner_role
            row.assigned_staff_id = item.assignee_id
            row.due_on = item.step.due
        else:
            if row is not None and row.status == "open":
                row.status = "closed"  # superseded by the next rung, never acted on
                session.add(row)
            row = FollowUp(
                shop_id=shop.id,
                customer_id=cid,
                tier=item.step.tier,
                kind=item.step.kind,
                template=item.step.template,
                reason_code=item.step.reason_code,
                owner_role=item.step.owner_role,
                assigned_staff_id=item.assignee_id,
                due_on=item.step.due,
                created_on=today,
                warning_on=item.facts.warning_on,
                created_at=now,
            )
        session.add(row)
        out[cid] = row
    # A proposal nobody acted on whose customer is off today's plan (ordered, paused, set
    # aside, marked lost, back to normal) is no longer asked for: it must not count as late.
    session.execute(
        update(FollowUp)
        .where(
            col(FollowUp.shop_id) == shop.id,
            col(FollowUp.status) == "open",
            col(FollowUp.created_on) < today,
            col(FollowUp.customer_id).not_in(ids or [0]),
        )
        .values(status="closed")
    )
    session.flush()
    return out


def describe(item: PlannedItem) -> dict[str, Any]:
    """The figures a digest line or a tap page shows for one item (no wording here)."""
    s = item.summary
    return {
        "customer_id": item.customer.id,
        "name": item.customer.name,
        "stage": str(item.stage),
        "tier": item.step.tier,
        "kind": item.step.kind,
        "reason_code": item.step.reason_code,
        "days_since_last": item.facts.days_since_last,
        "interval_days": s.expected_interval_days,
        "overdue_days": item.overdue_days,
        "value_at_risk_cents": s.value_at_risk_cents,
        "value_class": item.customer.value_class,
        "last_reaction": item.facts.last_reaction,
        "owner_role": item.step.owner_role,
        "due": item.step.due,
    }


def history_for(
    *, session: Session, shop: Shop, customer: Customer, summary: CustomerSummary, today: date
) -> CustomerHistory:
    """What a script may say about one customer, from its own records (tap page, one item)."""

    assert shop.id is not None and customer.id is not None
    h = _histories(session, shop, today, customer_ids=[customer.id]).get(customer.id, _History())
    # What earlier calls found out: the next rung answers it (the digest line says it too).
    call_reason = _call_reasons(session, [customer.id], today - timedelta(days=HISTORY_DAYS))
    known = script_facts(session, shop.id, customer.id)
    tickets, buckets = known.held.tickets, known.held.buckets
    price = known.ticket_price_cents or shop.settings.get("unit_price_cents")
    contacts = recent_contacts(
        session=session, shop=shop, customer_ids=[customer.id], today=today, limit=1
    ).get(customer.id)
    # Said to a customer: whole units ("还是2桶?"), never an average like 2.1.
    usual = (
        max(1, round(summary.total_quantity / summary.order_count)) if summary.order_count else None
    )
    days = (today - summary.last_order_on).days if summary.last_order_on else None
    tier = clv_tier(summary.clv_cents / 100) if shop.industry == "car" else None
    return CustomerHistory(
        name=customer.name,
        value_class=customer.value_class,
        is_company=customer.kind in COMPANY_KINDS,
        last_order_on=summary.last_order_on,
        usual_quantity=usual,
        interval_days=summary.expected_interval_days,
        days_since_last=days,
        clv_tier=tier,
        ticket_balance=tickets if tickets > 0 else None,
        buckets_held=buckets if buckets > 0 else None,
        # The tickets left are money the customer already paid: a voucher can round it up.
        balance_cents=tickets * int(price) if tickets > 0 and price else None,
        complaint=known.complaint,
        complaint_fix=known.complaint_fix,
        last_outreach_tier=h.last_tier,
        last_outreach_on=h.last_on,
        last_reaction=h.reaction,
        last_outcome=contacts[0].outcome if contacts else None,
        loss_reason=call_reason.get(customer.id) or h.loss_reason,
    )


@dataclass(frozen=True)
class ContactNote:
    """A customer's last contacts and the rung the ladder would take next (None: no more)."""

    contacts: tuple[Contact, ...]  # newest first, never empty
    next_tier: int | None
    next_due: date | None = None  # when the ladder proposes it, if later than today

    @property
    def last(self) -> Contact:
        return self.contacts[0]


def contact_notes(
    *,
    session: Session,
    shop: Shop,
    customer_ids: Sequence[int],
    today: date,
    limit: int = CONTACTS_SHOWN,
) -> dict[int, ContactNote]:
    """What came of the contacts with these customers (card, chat list): only those with any."""
    contacts = recent_contacts(
        session=session, shop=shop, customer_ids=list(customer_ids), today=today, limit=limit
    )
    if not contacts:
        return {}
    ids = list(contacts)
    policy = policy_for(shop)
    histories = _histories(session, shop, today, customer_ids=ids)
    reasons = _call_reasons(session, ids, today - timedelta(days=HISTORY_DAYS))
    out: dict[int, ContactNote] = {}
    for summary, customer in session.exec(
        select(CustomerSummary, Customer)
        .join(Customer, col(Customer.id) == col(CustomerSummary.customer_id))
        .where(col(Customer.id).in_(ids), Customer.shop_id == shop.id)
    ):
        assert customer.id is not None
        stage = stage_on(
            stored=summary.stage, check_on=summary.check_on, red_on=summary.red_on,
            lost_on=summary.lost_on, today=today,
        )  # fmt: skip
        step = None
        if customer.status == "active":
            facts = _facts(
                today=today,
                summary=summary,
                customer=customer,
                stage=stage,
                history=histories.get(customer.id),
                call_reason=reasons.get(customer.id),
                industry=shop.industry,
            )
            step = next_step(facts, policy)
        out[customer.id] = ContactNote(
            tuple(contacts[customer.id]),
            step.tier if step is not None else None,
            step.due if step is not None and step.due > today else None,
        )
    return out
