"""Building the morning digest: one message per person, from today's outreach plan.

Each person gets their own list (numbered, so "1 已发" records a result), grouped by tier
and ranked by value at risk; the owner also sees how the team is doing and who is late.
Short enough for a phone: a few lines per tier, the rest behind the full-list link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.channels.push import PushButton, PushItem, PushMessage
from app.clock import Clock
from app.config import Settings
from app.customers.models import Customer
from app.outreach.links import item_token, link_secret, list_token
from app.outreach.models import FollowUp
from app.outreach.outcomes import OUTCOME_LABELS, REASON_WORDS, Contact, recent_contacts, tap_key
from app.outreach.service import PlannedItem, plan_day, save_plan
from app.risk.signals import BY_CODE
from app.shops.models import Shop, Staff
from app.templating import render_message

LINES_PER_TIER = 5
TIER_ORDER = (3, 2, 1, 0)
# The choices under each kind of item (button keys: app.outreach.outcomes.tap_key).
CHOICES: dict[int, tuple[tuple[str, str | None], ...]] = {
    1: (("sent", None), ("warm", None), ("none", None), ("cold", None)),
    2: (("called", None), ("warm", None), ("none", None), ("lost", "price")),
    3: (("visited", None), ("recovered", None), ("lost", "competitor"), ("lost", "other")),
    0: (("sent", None), ("warm", None), ("cold", None)),
}


@dataclass(frozen=True)
class DigestLine:
    """One numbered line of a person's digest."""

    number: int
    item: PlannedItem
    followup_id: int | None
    reason: str
    url: str | None
    assignee_name: str
    last_contact: Contact | None = None  # what the last contact found out (昨天电话:嫌贵)


@dataclass(frozen=True)
class TeamRow:
    name: str
    count: int
    late: int


@dataclass
class PersonDigest:
    staff: Staff
    lines: list[DigestLine]
    team: list[TeamRow]
    title: str
    text: str
    list_url: str | None

    def push_message(self, *, key: str) -> PushMessage:
        assert self.staff.id is not None
        items = tuple(
            PushItem(
                followup_id=line.followup_id,
                number=line.number,
                title=f"{line.item.customer.name} · {_TIER_WORDS[line.item.step.tier]}",
                description=line.reason,
                url=line.url,
                buttons=tuple(
                    PushButton(
                        key=tap_key(line.followup_id, outcome, arg), text=_choice(outcome, arg)
                    )
                    for outcome, arg in CHOICES[line.item.step.tier]
                ),
            )
            for line in self.lines
            if line.followup_id is not None
        )
        return PushMessage(
            key=key,
            shop_id=self.staff.shop_id,
            staff_id=self.staff.id,
            title=self.title,
            text=self.text,
            items=items,
        )


@dataclass
class ShopDigest:
    shop: Shop
    day: date
    items: list[PlannedItem]
    people: list[PersonDigest] = field(default_factory=list)


_TIER_WORDS = {3: "上门/优惠", 2: "打电话", 1: "发微信", 0: "回访关怀"}


def _choice(outcome: str, arg: str | None) -> str:
    if outcome == "lost" and arg:
        return f"流失·{REASON_WORDS[arg]}"
    return OUTCOME_LABELS[outcome]


def choices_for(tier: int) -> list[dict[str, str | None]]:
    """The tap choices for an item of this tier, with labels (the tap page shows them)."""
    return [
        {"outcome": o, "arg": a, "label": _choice(o, a)} for o, a in CHOICES.get(tier, CHOICES[1])
    ]


def reason_line(shop: Shop, item: PlannedItem, templates_dir: Any) -> str:
    """`38天没订,平时25天一次`: the one-line why, from the shop's templates."""
    spec = BY_CODE.get(item.step.reason_code)
    return render_message(
        templates_dir,
        shop.industry,
        shop.slug,
        "digest/reason.txt.j2",
        code=item.step.reason_code,
        label=spec.label if spec is not None else None,
        stage=str(item.stage),
        days_since_last=item.facts.days_since_last,
        interval_days=item.facts.expected_interval_days,
        overdue_days=item.overdue_days,
        last_outreach_on=item.facts.last_outreach_on,
        recalled_on=item.facts.recently_recalled,
        industry=shop.industry,
    )


def _people(session: Session, shop: Shop) -> list[Staff]:
    return list(session.exec(select(Staff).where(Staff.shop_id == shop.id).order_by(col(Staff.id))))


def _late_counts(session: Session, shop: Shop, day: date) -> dict[int, int]:
    """Per person: open follow-ups proposed two or more days ago and still untouched."""
    rows = session.exec(
        select(FollowUp.assigned_staff_id).where(
            FollowUp.shop_id == shop.id,
            FollowUp.status == "open",
            # Proposed two or more mornings ago and still untouched: past the 48-hour target.
            col(FollowUp.created_on) <= day - timedelta(days=2),
        )
    )
    out: dict[int, int] = {}
    for staff_id in rows:
        if staff_id is not None:
            out[staff_id] = out.get(staff_id, 0) + 1
    return out


def yesterday_results(session: Session, shop: Shop, day: date) -> dict[str, Any]:
    """What came of the follow-ups yesterday: counts per outcome and the names won back."""
    tz = ZoneInfo(shop.timezone)
    start = datetime.combine(day - timedelta(days=1), time(), tz)
    end = datetime.combine(day, time(), tz)
    rows = session.exec(
        select(FollowUp.outcome, Customer.name)
        .join(Customer, col(Customer.id) == col(FollowUp.customer_id))
        .where(
            FollowUp.shop_id == shop.id,
            col(FollowUp.outcome_at) >= start,
            col(FollowUp.outcome_at) < end,
        )
    ).all()
    counts: dict[str, int] = {}
    recovered: list[str] = []
    for outcome, name in rows:
        if outcome is None:
            continue
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome == "recovered":
            recovered.append(name)
    contacted = sum(counts.get(o, 0) for o in ("sent", "called", "visited", "warm", "none", "cold"))
    return {
        "any": bool(rows),
        "contacted": contacted,
        "warm": counts.get("warm", 0),
        "recovered": recovered,
        "returned": counts.get("returned", 0),
        "lost": counts.get("lost", 0),
    }


def build_digest(
    *,
    session: Session,
    shop: Shop,
    day: date,
    settings: Settings,
    clock: Clock,
    persist: bool,
) -> ShopDigest:
    """Everyone's digest for `day`. With persist, follow-up rows and tap links are made."""
    assert shop.id is not None
    items = plan_day(session=session, shop=shop, today=day)
    rows = (
        save_plan(session=session, shop=shop, items=items, today=day, clock=clock)
        if persist
        else {}
    )
    people = _people(session, shop)
    names = {p.id: p.name for p in people}
    owner = next((p for p in people if p.role == "owner"), people[0] if people else None)
    late = _late_counts(session, shop, day) if persist else {}
    yesterday = yesterday_results(session, shop, day)
    now = clock.now()
    ttl = timedelta(hours=settings.link_ttl_hours)
    secret = link_secret(settings) if persist else b""
    base = settings.public_url.rstrip("/")
    digest = ShopDigest(shop=shop, day=day, items=items)
    by_person: dict[int, list[PlannedItem]] = {}
    for item in items:
        by_person.setdefault(item.assignee_id, []).append(item)
    # Only the lines the message shows say how the last contact went (one read for all).
    shown = [i.customer.id or 0 for mine in by_person.values() for i in _shown(mine)]
    contacts = recent_contacts(session=session, shop=shop, customer_ids=shown, today=day, limit=1)
    for person in people:
        assert person.id is not None
        mine = by_person.get(person.id, [])
        is_owner = owner is not None and person.id == owner.id
        if not mine and not is_owner:
            continue  # staff with nothing to do today get no message
        lines: list[DigestLine] = []
        for number, item in enumerate(mine, start=1):
            row = rows.get(item.customer.id or 0)
            url = None
            if row is not None and row.id is not None:
                token = item_token(secret, shop_id=shop.id, followup_id=row.id, now=now, ttl=ttl)
                url = f"{base}/t/{token}"
            lines.append(
                DigestLine(
                    number=number,
                    item=item,
                    followup_id=row.id if row is not None else None,
                    reason=reason_line(shop, item, settings.templates_dir),
                    url=url,
                    assignee_name=names.get(item.assignee_id, ""),
                    last_contact=next(iter(contacts.get(item.customer.id or 0, [])), None),
                )
            )
        team = []
        if is_owner:
            for other in people:
                if other.id == person.id:
                    continue
                count = len(by_person.get(other.id or 0, []))
                if count or late.get(other.id or 0):
                    team.append(TeamRow(other.name, count, late.get(other.id or 0, 0)))
        list_url = None
        if persist:
            token = list_token(
                secret, shop_id=shop.id, staff_id=person.id, day=day, now=now, ttl=ttl
            )
            list_url = f"{base}/d/{token}"
        title = f"{day.month}月{day.day}日 回头客提醒"
        text = render_message(
            settings.templates_dir,
            shop.industry,
            shop.slug,
            "digest/digest.txt.j2",
            shop_name=shop.name,
            person_name=person.name,
            is_owner=is_owner,
            day=day,
            total=len(lines),
            groups=_groups(lines),
            team=team,
            own_late=late.get(person.id, 0),
            yesterday=yesterday if is_owner else None,
            list_url=list_url,
            preview=not persist,
        )
        digest.people.append(PersonDigest(person, lines, team, title, text, list_url))
    return digest


def _shown(items: list[PlannedItem]) -> list[PlannedItem]:
    """The items a person's message lists: the first few of each tier."""
    out: list[PlannedItem] = []
    for tier in TIER_ORDER:
        out += [i for i in items if i.step.tier == tier][:LINES_PER_TIER]
    return out


def _groups(lines: list[DigestLine]) -> list[dict[str, Any]]:
    groups = []
    for tier in TIER_ORDER:
        in_tier = [line for line in lines if line.item.step.tier == tier]
        if not in_tier:
            continue
        groups.append(
            {
                "tier": tier,
                "count": len(in_tier),
                "lines": [
                    {
                        "number": line.number,
                        "name": line.item.customer.name,
                        "stage": str(line.item.stage),
                        "reason": line.reason,
                        "tier": line.item.step.tier,
                        "last_contact": line.last_contact,
                        # What is at stake, in whole 元 as owners are told money.
                        "at_stake_yuan": round(line.item.summary.value_at_risk_cents / 100),
                    }
                    for line in in_tier[:LINES_PER_TIER]
                ],
                "more": max(0, len(in_tier) - LINES_PER_TIER),
            }
        )
    return groups
