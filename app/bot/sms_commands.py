"""发短信: an owner-confirmed tier-1 text to a customer who has no WeChat.

"3 发短信" (a number from the morning digest) or "王姐 发短信" shows the approved
template's wording and the masked number and asks "回复 1 确认发送". The "1" only queues
the text (an `sms_message` row, status queued: app/outreach/sms.py) in this message's
transaction; the channels' sender sends it once that transaction has committed, and records
the follow-up's outcome "sent" when the provider accepted it.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from app.bot import pending
from app.bot.context import BotContext
from app.bot.numbers import latest_digest
from app.bot.parse import Intent
from app.bot.registry import registry
from app.customers.matching import is_clear, match_customers
from app.customers.models import Customer
from app.customers.service import mask_phone
from app.outreach.models import FollowUp
from app.outreach.sms import (
    QUEUED,
    SmsMessage,
    SmsOptOut,
    SmsRefused,
    key_prefix,
    normalise_phone,
    outreach_key,
    wake_after_commit,
)
from app.templating import render_message

CHOICES_SHOWN = 5
_STATUS_WORDS = {
    "queued": "正在发",
    "sending": "正在发",
    "sent": "已经发出",
    "refused": "没发出",
    "failed": "没发出",
}


def sms_ready(ctx: BotContext) -> bool:
    settings = ctx.service_settings()
    return settings.sms_configured and bool(settings.sms_outreach_template_id)


def preview(ctx: BotContext) -> str:
    """The approved outreach template's wording, as the customer will read it."""
    settings = ctx.service_settings()
    return render_message(
        ctx.templates_dir, ctx.shop.industry, ctx.shop.slug, "channels/sms_outreach.txt.j2",
        shop_name=ctx.shop.name[:12], sign_name=settings.sms_sign_name,
    )  # fmt: skip


def _digest_item(ctx: BotContext, number: int) -> dict[str, Any] | None:
    latest = latest_digest(ctx)
    if latest is None:
        return None
    return next((i for i in latest[0].items if int(i.get("number", 0)) == number), None)


def _open_followup(ctx: BotContext, customer: Customer) -> FollowUp | None:
    return ctx.session.exec(
        select(FollowUp)
        .where(
            FollowUp.shop_id == ctx.shop_id,
            FollowUp.customer_id == customer.id,
            col(FollowUp.status) != "closed",
        )
        .order_by(col(FollowUp.created_on).desc())
        .limit(1)
    ).first()


@registry.command(
    "sms_outreach",
    summary="给没有微信的客户发一条问候短信(先给您看内容,回复 1 才发)",
    example="3 发短信",
    verbs=("发短信",),
    reader="text",
)
def sms_outreach(ctx: BotContext, intent: Intent) -> list[str]:
    if not sms_ready(ctx):
        return [ctx.render("sms_not_configured")]
    if intent.number is not None:
        item = _digest_item(ctx, intent.number)
        if item is None:
            return [ctx.render("sms_no_number", number=intent.number)]
        followup = ctx.session.get(FollowUp, int(item["followup_id"]))
        customer = ctx.session.get(Customer, followup.customer_id) if followup else None
        if followup is None or customer is None or customer.shop_id != ctx.shop_id:
            return [ctx.render("sms_no_number", number=intent.number)]
        return _ask_confirm(ctx, customer, followup)
    if not intent.customer:
        return [ctx.render("need_customer", example="王姐 发短信")]
    query = intent.customer
    matches = match_customers(session=ctx.session, shop=ctx.shop, query=query)
    if not matches and query.startswith("给") and len(query) > 1:  # "给王姐发短信"
        query = query[1:]
        matches = match_customers(session=ctx.session, shop=ctx.shop, query=query)
    if not matches:
        return [ctx.render("card_not_found", query=query)]
    if not is_clear(matches):
        candidates = [m.customer_id for m in matches[:CHOICES_SHOWN]]
        pending.ask(ctx, "sms_choose", {"candidates": candidates})
        shown = [ctx.session.get(Customer, c) for c in candidates]
        described = [
            {"name": c.name, "address": c.address or "", "phone": mask_phone(c.phone)}
            for c in shown
            if c is not None
        ]
        return [
            ctx.render(
                "ask_which_customer",
                query=query,
                candidates=described,
                more=len(matches) > CHOICES_SHOWN,
            )
        ]
    customer = ctx.session.get(Customer, matches[0].customer_id)
    assert customer is not None
    return _ask_confirm(ctx, customer, _open_followup(ctx, customer))


def _refusal(ctx: BotContext, customer: Customer, followup: FollowUp | None) -> str | None:
    """Why this customer cannot be texted now, in the owner's words; None if they can."""
    if not customer.phone:
        return ctx.render("sms_no_phone", who=customer.name)
    try:
        number = normalise_phone(customer.phone)
    except SmsRefused:
        return ctx.render("sms_no_phone", who=customer.name)
    if ctx.session.get(SmsOptOut, number) is not None:
        return ctx.render("sms_opted_out", who=customer.name)
    assert customer.id is not None
    prefix = key_prefix(
        followup_id=followup.id if followup else None, customer_id=customer.id, day=ctx.today
    )
    earlier = ctx.session.exec(
        select(SmsMessage).where(col(SmsMessage.key).startswith(prefix, autoescape=True))
    ).first()
    if earlier is not None:
        return ctx.render(
            "sms_already",
            who=customer.name,
            status=_STATUS_WORDS.get(earlier.status, earlier.status),
            error=earlier.error or "",
        )
    return None


def _ask_confirm(ctx: BotContext, customer: Customer, followup: FollowUp | None) -> list[str]:
    refusal = _refusal(ctx, customer, followup)
    if refusal is not None:
        return [refusal]
    pending.ask(
        ctx,
        "sms_confirm",
        {"customer_id": customer.id, "followup_id": followup.id if followup else None},
    )
    return [
        ctx.render(
            "sms_confirm", who=customer.name, phone=mask_phone(customer.phone), text=preview(ctx)
        )
    ]


@pending.answers("sms_choose")
def _chosen(ctx: BotContext, payload: dict[str, Any], number: int) -> list[str]:
    candidates = [int(c) for c in payload.get("candidates", [])]
    if not 1 <= number <= len(candidates):
        pending.ask(ctx, "sms_choose", payload)
        return [ctx.render("choice_out_of_range", count=len(candidates))]
    customer = ctx.session.get(Customer, candidates[number - 1])
    if customer is None or customer.shop_id != ctx.shop_id:
        return [ctx.render("no_pending")]
    return _ask_confirm(ctx, customer, _open_followup(ctx, customer))


@pending.answers("sms_confirm")
def _confirmed(ctx: BotContext, payload: dict[str, Any], number: int) -> list[str]:
    if number != 1:
        pending.ask(ctx, "sms_confirm", payload)
        return [ctx.render("choice_out_of_range", count=1)]
    if not sms_ready(ctx):
        return [ctx.render("sms_not_configured")]
    customer = ctx.session.get(Customer, int(payload["customer_id"]))
    if customer is None or customer.shop_id != ctx.shop_id:
        return [ctx.render("no_pending")]
    followup_id = payload.get("followup_id")
    followup = ctx.session.get(FollowUp, int(followup_id)) if followup_id else None
    refusal = _refusal(ctx, customer, followup)
    if refusal is not None:
        return [refusal]
    assert customer.id is not None and ctx.staff.id is not None and customer.phone
    settings = ctx.service_settings()
    # Only queued here: the provider is called after this transaction has committed.
    ctx.session.add(
        SmsMessage(
            key=outreach_key(
                followup_id=followup.id if followup else None,
                customer_id=customer.id,
                day=ctx.today,
                staff_id=ctx.staff.id,
            ),
            shop_id=ctx.shop_id,
            phone=normalise_phone(customer.phone),
            purpose="outreach",
            template_id=settings.sms_outreach_template_id,
            params=[ctx.shop.name[:12]],
            status=QUEUED,
            created_at=ctx.clock.now(),
        )
    )
    wake_after_commit(ctx.session)
    return [ctx.render("sms_queued", who=customer.name, with_followup=followup is not None)]
