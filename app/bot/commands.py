"""The commands the bot understands, registered with their words and help text."""

from __future__ import annotations

from typing import Any

from app.bot import pending
from app.bot.context import BotContext
from app.bot.parse import Intent, OrderItem
from app.bot.registry import registry
from app.customers.models import Customer
from app.customers.service import (
    CustomerError,
    create_customer,
    customer_card,
    due_customers,
    find_customers,
    mask_phone,
)
from app.orders.models import Order
from app.orders.service import OrderError, record_order

FOLLOWUP_LIST_LIMIT = 20


@registry.command(
    "followups",
    summary="看今天该联系哪些老客户",
    example="今天该跟进谁",
    phrases=("今天该跟进谁", "该跟进谁", "跟进名单", "谁该联系了", "今天跟进谁", "跟进"),
)
def followups(ctx: BotContext, intent: Intent) -> list[str]:
    due = due_customers(session=ctx.session, shop=ctx.shop, today=ctx.today)
    return [
        ctx.render(
            "followups",
            due=due[:FOLLOWUP_LIST_LIMIT],
            more=max(0, len(due) - FOLLOWUP_LIST_LIMIT),
            total=len(due),
        )
    ]


def _item_payload(item: OrderItem) -> dict[str, Any]:
    return {
        "customer": item.customer,
        "quantity": item.quantity,
        "unit": item.unit,
        "amount_cents": item.amount_cents,
    }


def _item_from_payload(payload: dict[str, Any]) -> OrderItem:
    return OrderItem(
        customer=str(payload["customer"]),
        quantity=int(payload["quantity"]),
        unit=str(payload["unit"]),
        amount_cents=payload.get("amount_cents"),
    )


def _record(ctx: BotContext, customer: Customer, item: OrderItem, raw: str) -> list[str]:
    """Write the order and say exactly what was written."""
    assert customer.id is not None
    card_before = customer_card(session=ctx.session, customer=customer, today=ctx.today)
    previous_on = card_before.summary.last_order_on
    usual = (
        card_before.summary.expected_interval_days if card_before.summary.order_count > 1 else None
    )
    try:
        order = record_order(
            session=ctx.session,
            shop=ctx.shop,
            customer=customer,
            quantity=item.quantity,
            unit=item.unit,
            amount_cents=item.amount_cents,
            clock=ctx.clock,
            raw_text=raw,
            inbox_id=ctx.inbox_id,
            staff_id=ctx.staff.id,
            source="chat",
        )
    except OrderError as exc:
        return [ctx.render("order_invalid", reason=str(exc))]
    gap = (order.order_date - previous_on).days if previous_on else None
    return [
        ctx.render(
            "order_recorded",
            customer=customer,
            order=order,
            previous_on=previous_on,
            gap_days=gap,
            usual_interval=usual,
        )
    ]


@registry.command("order", summary="记一单:客户名 + 数量", example="王姐 2桶")
def order(ctx: BotContext, intent: Intent) -> list[str]:
    replies: list[str] = []
    for item in intent.items:
        matches = find_customers(session=ctx.session, shop=ctx.shop, query=item.customer)
        if not matches:
            pending.ask(ctx, "create_for_order", {"item": _item_payload(item), "raw": intent.text})
            replies.append(ctx.render("ask_create_customer", item=item))
        elif len(matches) > 1:
            pending.ask(
                ctx,
                "choose_for_order",
                {
                    "item": _item_payload(item),
                    "raw": intent.text,
                    "candidates": [c.id for c in matches],
                },
            )
            replies.append(
                ctx.render("ask_which_customer", query=item.customer, candidates=_describe(matches))
            )
        else:
            replies.extend(_record(ctx, matches[0], item, intent.text))
    return replies


def _describe(customers: list[Customer]) -> list[dict[str, str]]:
    return [
        {"name": c.name, "address": c.address or "", "phone": mask_phone(c.phone)}
        for c in customers
    ]


def _card(ctx: BotContext, customer: Customer) -> list[str]:
    card = customer_card(session=ctx.session, customer=customer, today=ctx.today)
    return [ctx.render("card", card=card)]


@registry.command("card", summary="看某位客户的情况:发客户名", example="王姐")
def card(ctx: BotContext, intent: Intent) -> list[str]:
    matches = find_customers(session=ctx.session, shop=ctx.shop, query=intent.args)
    if not matches:
        return [ctx.render("card_not_found", query=intent.args)]
    if len(matches) > 1:
        pending.ask(ctx, "choose_for_card", {"candidates": [c.id for c in matches]})
        return [ctx.render("ask_which_customer", query=intent.args, candidates=_describe(matches))]
    return _card(ctx, matches[0])


@registry.command(
    "new_customer",
    summary="新建客户:名字 电话 地址(电话、地址可不填)",
    example="新客户 王姐 13800001234 幸福小区3栋",
    prefixes=("新客户", "新增客户", "添加客户", "加客户"),
)
def new_customer(ctx: BotContext, intent: Intent) -> list[str]:
    name = intent.fields.get("name") or ""
    existing = find_customers(session=ctx.session, shop=ctx.shop, query=name) if name else []
    if any(c.name == name for c in existing):
        return [ctx.render("customer_exists", name=name)]
    try:
        customer = create_customer(
            session=ctx.session,
            shop=ctx.shop,
            name=name,
            phone=intent.fields.get("phone"),
            address=intent.fields.get("address"),
            clock=ctx.clock,
            staff_id=ctx.staff.id,
        )
    except CustomerError as exc:
        return [ctx.render("customer_invalid", reason=str(exc))]
    return [ctx.render("customer_created", customer=customer, phone=mask_phone(customer.phone))]


@registry.command(
    "help",
    summary="看我能做什么",
    example="帮助",
    phrases=("帮助", "help", "菜单", "怎么用", "你能做什么", "说明", "?"),
)
def help_(ctx: BotContext, intent: Intent) -> list[str]:
    return [ctx.render("help", commands=registry.listed())]


@registry.command("choice", listed=False)
def choice(ctx: BotContext, intent: Intent) -> list[str]:
    question = pending.take(ctx)
    if question is None:
        return [ctx.render("no_pending")]
    payload = question.payload
    number = intent.number or 0
    if question.kind == "create_for_order":
        if number != 1:
            pending.ask(ctx, question.kind, payload)
            return [ctx.render("choice_out_of_range", count=1)]
        item = _item_from_payload(payload["item"])
        try:
            customer = create_customer(
                session=ctx.session,
                shop=ctx.shop,
                name=item.customer,
                clock=ctx.clock,
                staff_id=ctx.staff.id,
            )
        except CustomerError as exc:
            return [ctx.render("customer_invalid", reason=str(exc))]
        return [
            ctx.render("customer_created_short", customer=customer),
            *_record(ctx, customer, item, payload["raw"]),
        ]
    candidates: list[int] = list(payload.get("candidates", []))
    if not 1 <= number <= len(candidates):
        pending.ask(ctx, question.kind, payload)
        return [ctx.render("choice_out_of_range", count=len(candidates))]
    chosen = ctx.session.get(Customer, candidates[number - 1])
    if chosen is None or chosen.shop_id != ctx.shop_id:
        return [ctx.render("no_pending")]
    if question.kind == "choose_for_order":
        return _record(ctx, chosen, _item_from_payload(payload["item"]), payload["raw"])
    return _card(ctx, chosen)


@registry.command("cancel", listed=False)
def cancel(ctx: BotContext, intent: Intent) -> list[str]:
    question = pending.take(ctx)
    return [ctx.render("cancelled" if question else "no_pending")]


@registry.command("empty", listed=False)
def empty(ctx: BotContext, intent: Intent) -> list[str]:
    return [ctx.render("empty", examples=[c.example for c in registry.listed()])]


@registry.command("unknown", listed=False)
def unknown(ctx: BotContext, intent: Intent) -> list[str]:
    return [
        ctx.render(
            "not_understood", text=intent.text, examples=[c.example for c in registry.listed()]
        )
    ]


@registry.command("too_long", listed=False)
def too_long(ctx: BotContext, intent: Intent) -> list[str]:
    return [ctx.render("too_long")]


__all__ = ["Order", "registry"]
