"""The pages behind digest links: one item's tap page, and a person's full list.

GET /t/{token} shows the customer, why they are on the list, the script (the tier-1
message has a copy button; a phone number is a tap-to-dial link) and the choices.
POST /t/{token} records one choice; the link's nonce is stored with the write, so the
same link cannot write twice. A link authorises only the item it names, in its own shop.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.customers.models import Customer, CustomerSummary
from app.db import read_session, write_session
from app.deps import ClockDep, EngineDep, SettingsDep
from app.digest.build import choices_for
from app.outreach.links import LinkError, link_secret, read_item, read_list
from app.outreach.models import FollowUp, LinkUse
from app.outreach.outcomes import (
    MAX_COST_CENTS,
    OUTCOME_LABELS,
    OutcomeError,
    Recorded,
    apply_choice,
    confirmation,
)
from app.outreach.render import TIER_LABELS, render_step, script_context
from app.outreach.service import history_for
from app.outreach.tiers import Step
from app.pages import link_page, link_refused
from app.risk.assess import STAGE_LABELS, stage_on
from app.shops.models import Shop, Staff

router = APIRouter(include_in_schema=False)


# A follow-up closed without an outcome was replaced by the next rung of the ladder, or its
# customer left the plan (app.outreach.service.save_plan): nothing was recorded on it and
# nothing can be now.
SUPERSEDED = "这条跟进已经换成新的一步了,或者客户已经下单、暂停、不用追了。请打开今天最新的提醒。"


def _superseded(followup: FollowUp) -> bool:
    return followup.status == "closed" and followup.outcome is None


def _tel(phone: str | None) -> str | None:
    digits = "".join(ch for ch in phone or "" if ch.isdigit() or ch == "+")
    return digits or None


def _item_view(
    session: Session, shop: Shop, followup: FollowUp, today: date, templates_dir: Path
) -> dict[str, Any]:
    customer = session.get(Customer, followup.customer_id)
    summary = session.get(CustomerSummary, followup.customer_id)
    if customer is None or summary is None or customer.shop_id != shop.id:
        raise LookupError
    step = Step(
        tier=followup.tier,
        kind=followup.kind,
        reason_code=followup.reason_code,
        due=followup.due_on,
        owner_role=followup.owner_role,
        template=followup.template,
    )
    history = history_for(
        session=session, shop=shop, customer=customer, summary=summary, today=today
    )
    context = script_context(
        step, history, industry=shop.industry, shop_name=shop.name, settings=shop.settings
    )
    script = render_step(
        step, context, templates_dir=templates_dir, industry=shop.industry, shop_slug=shop.slug
    )
    stage = stage_on(
        stored=summary.stage, check_on=summary.check_on, red_on=summary.red_on,
        lost_on=summary.lost_on, today=today,
    )  # fmt: skip
    from app.customers.service import mask_phone

    return {
        "name": customer.name,
        "stage_label": STAGE_LABELS[stage],
        "tier_label": TIER_LABELS[followup.tier],
        "days_since_last": history.days_since_last,
        "interval_days": round(summary.expected_interval_days)
        if summary.expected_interval_days
        else None,
        "phone_masked": mask_phone(customer.phone),
        "tel": _tel(customer.phone),
        "script": script,
        "copyable": followup.tier in (0, 1),
        "choices": choices_for(followup.tier),
        # Calls may end in a make-good and visits in an offer: their cost feeds the ROI report.
        "asks_cost": followup.tier in (2, 3),
        "done": followup.status == "closed",
        "outcome_label": OUTCOME_LABELS.get(followup.outcome or "", ""),
        "recorded": _recorded_line(followup, customer),
    }


def _recorded_line(followup: FollowUp, customer: Customer) -> str | None:
    """What is on record for this item, said as the confirmation said it (from the database,
    never from the URL, so a crafted link cannot put words on the page)."""
    if followup.outcome is None:
        return None
    recorded = Recorded(
        followup,
        customer,
        followup.outcome,
        OUTCOME_LABELS.get(followup.outcome, followup.outcome),
        followup.cost_cents,
        reason=followup.outcome_reason,
    )
    return confirmation(recorded)


def parse_cost(text: str) -> int | None:
    """The tap page's cost box, in yuan ("20", "12.5"); None when left empty.

    ValueError for anything that is not a plain amount between 0 and 100,000 yuan."""
    text = text.strip().removesuffix("元").strip()
    if not text:
        return None
    whole, _, fraction = text.partition(".")
    if not whole.isascii() or not whole.isdigit() or len(fraction) > 2:
        raise ValueError(text)
    if fraction and (not fraction.isascii() or not fraction.isdigit()):
        raise ValueError(text)
    cents = int(whole) * 100 + int(fraction.ljust(2, "0") or 0)
    if not 0 <= cents <= MAX_COST_CENTS:
        raise ValueError(text)
    return cents or None


@router.get("/t/{token}", response_class=HTMLResponse)
def tap_page(
    request: Request, token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> HTMLResponse:
    try:
        link = read_item(link_secret(settings), token, now=clock.now())
    except LinkError as exc:
        return link_refused(request, str(exc), 403)
    with read_session(engine) as session:
        followup = session.get(FollowUp, link.followup_id)
        shop = session.get(Shop, link.shop_id)
        if followup is None or shop is None or followup.shop_id != shop.id:
            return link_refused(request, "链接无效", 403)
        if _superseded(followup):
            return link_refused(request, SUPERSEDED, 410)
        used = session.get(LinkUse, link.nonce) is not None
        today = clock.now().astimezone(ZoneInfo(shop.timezone)).date()
        try:
            view = _item_view(session, shop, followup, today, settings.templates_dir)
        except LookupError:
            return link_refused(request, "找不到这位客户", 404)
    return link_page(
        request,
        "tap.html",
        {
            "shop_name": shop.name,
            "item": view,
            "used": used,
            # After this link recorded something, say what is on record now.
            "flash": view["recorded"] if used else None,
            "post_url": f"/t/{token}",
        },
    )


@router.post("/t/{token}")
def tap_record(
    request: Request,
    token: str,
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
    choice: Annotated[str, Form(max_length=32)],
    cost: Annotated[str, Form(max_length=16)] = "",
) -> Any:
    outcome, _, arg = choice.partition(":")
    try:
        cost_cents = parse_cost(cost)
    except ValueError:
        return link_refused(request, "优惠花费请填数字,单位是元,比如 20 或 12.5", 400)
    try:
        link = read_item(link_secret(settings), token, now=clock.now())
    except LinkError as exc:
        return link_refused(request, str(exc), 403)
    try:
        with write_session(engine) as session:
            followup = session.get(FollowUp, link.followup_id)
            shop = session.get(Shop, link.shop_id)
            if followup is None or shop is None or followup.shop_id != shop.id:
                return link_refused(request, "链接无效", 403)
            if session.get(LinkUse, link.nonce) is not None:
                return link_refused(
                    request, "这个链接已经记过一次了;再有新情况,回复编号或等明天的提醒。", 409
                )
            if _superseded(followup):
                return link_refused(request, SUPERSEDED, 410)
            staff = _acting_staff(session, shop, followup)
            allowed = {(c["outcome"], c["arg"] or "") for c in choices_for(followup.tier)}
            if (outcome, arg) not in allowed:
                return link_refused(request, "没有这个选项", 400)
            if cost_cents and followup.tier not in (2, 3):
                return link_refused(request, "这一步不涉及优惠花费", 400)
            apply_choice(
                session=session,
                shop=shop,
                staff=staff,
                followup_id=link.followup_id,
                outcome=outcome,
                arg=arg or None,
                clock=clock,
                source="link",
                cost_cents=cost_cents,
            )
            session.add(
                LinkUse(
                    nonce=link.nonce,
                    shop_id=shop.id,
                    followup_id=link.followup_id,
                    used_at=clock.now(),
                )
            )
            session.flush()
    except IntegrityError:
        # Two taps raced with the same link: the first write won, this one changed nothing.
        return link_refused(request, "这个链接已经记过一次了", 409)
    except OutcomeError as exc:
        return link_refused(request, str(exc), 409)
    return RedirectResponse(url=f"/t/{token}", status_code=303)


def _acting_staff(session: Session, shop: Shop, followup: FollowUp) -> Staff:
    """The link was sent to the item's assignee; it acts as them (else as the owner)."""
    if followup.assigned_staff_id is not None:
        staff = session.get(Staff, followup.assigned_staff_id)
        if staff is not None and staff.shop_id == shop.id:
            return staff
    from app.shops.service import owner_of

    return owner_of(session=session, shop=shop)


@router.get("/d/{token}", response_class=HTMLResponse)
def full_list(
    request: Request, token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> HTMLResponse:
    from app.digest.models import DigestDelivery, DigestRun

    try:
        link = read_list(link_secret(settings), token, now=clock.now())
    except LinkError as exc:
        return link_refused(request, str(exc), 403)
    with read_session(engine) as session:
        shop = session.get(Shop, link.shop_id)
        staff = session.get(Staff, link.staff_id)
        if shop is None or staff is None or staff.shop_id != shop.id:
            return link_refused(request, "链接无效", 403)
        delivery = session.exec(
            select(DigestDelivery)
            .join(DigestRun, col(DigestRun.id) == col(DigestDelivery.run_id))
            .where(
                DigestRun.shop_id == shop.id,
                DigestRun.run_date == link.day,
                DigestDelivery.staff_id == staff.id,
            )
        ).first()
        items = list(delivery.items) if delivery is not None else []
        ids = [int(i["followup_id"]) for i in items]
        states = {
            f.id: f
            for f in session.exec(select(FollowUp).where(col(FollowUp.id).in_(ids)))
            if f.shop_id == shop.id
        }
    rows = [
        {
            "number": i["number"],
            "title": i["title"],
            "description": i["description"],
            "url": i.get("url"),
            "done": OUTCOME_LABELS.get(states[i["followup_id"]].outcome or "", "")
            if i["followup_id"] in states
            else "",
        }
        for i in items
    ]
    return link_page(
        request,
        "digest_list.html",
        {"shop_name": shop.name, "person": staff.name, "day": link.day, "rows": rows},
    )
