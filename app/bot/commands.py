"""The commands the bot understands, registered with their words and help text.

Every write says what was understood; a name that could mean several customers is asked
about, never guessed; a name that matches nobody is offered for creation (orders) or
reported (everything else).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlmodel import Session

from app.bot import ledger, pending
from app.bot.context import BotContext
from app.bot.numbers import digest_numbers
from app.bot.parse import (
    COMPLAINT_WORDS,
    DEPOSIT_RETURN_WORDS,
    DEPOSIT_WORDS,
    LOST_WORDS,
    PAUSE_WORDS,
    REACTION_WORDS,
    REASONS,
    RECOVERED_WORDS,
    RESOLVED_WORDS,
    RESTORE_WORDS,
    SATISFACTION_WORDS,
    SET_ASIDE_WORDS,
    SETTING_WORDS,
    TICKETS_BUY_WORDS,
    TICKETS_USE_WORDS,
    UNAVOIDABLE_REASONS,
    VALUE_CLASS_WORDS,
    Intent,
    OrderItem,
    parse,
)
from app.bot.registry import registry
from app.bot.vocab import vocabulary_for
from app.clock import Clock, local_today
from app.customers.matching import Match, is_clear, match_customers
from app.customers.models import OWNER_CLASS_TAG, Customer
from app.customers.risk import settle_refresh
from app.customers.service import (
    REMINDER_SETTINGS,
    SET_ASIDE_CLASS,
    CustomerError,
    SettingRefused,
    create_customer,
    customer_card,
    due_list,
    mask_phone,
    reminder_settings,
    restore_value_class,
    set_reminder_setting,
    set_value_class,
    write_reminder_settings,
)
from app.events import holdings as holdings_of
from app.events.models import Event
from app.events.service import live_rows
from app.flows import record_order
from app.orders.models import Order
from app.orders.service import OrderError
from app.outreach.service import contact_notes
from app.shops.models import Shop

FOLLOWUP_LIST_LIMIT = 20
CHOICES_SHOWN = 5
LOW_SATISFACTION = 8  # below this (out of 10) is a yellow signal (domain.md §2)
# Item actions that may create the customer they name when nobody matches.
ITEM_ACTIONS = ("order", "tickets_buy", "tickets_use", "deposit", "deposit_return")


@registry.command(
    "followups",
    summary="看今天该联系哪些老客户",
    example="今天该跟进谁",
    phrases=(
        "今天该跟进谁",
        "该跟进谁",
        "跟进名单",
        "谁该联系了",
        "今天跟进谁",
        "跟进",
        "今天联系谁",
        "该联系谁",
        "今天该联系谁",
        "跟进谁",
        "谁该跟进了",
        "名单",
    ),
)
def followups(ctx: BotContext, intent: Intent) -> list[str]:
    due = due_list(session=ctx.session, shop=ctx.shop, today=ctx.today)
    shown = due[:FOLLOWUP_LIST_LIMIT]
    ids = [d.customer.id for d in shown]
    return [
        ctx.render(
            "followups",
            due=shown,
            more=max(0, len(due) - FOLLOWUP_LIST_LIMIT),
            total=len(due),
            # What came of the last contact with each, and the next rung (昨天电话:嫌贵 → 上门).
            notes=contact_notes(
                session=ctx.session, shop=ctx.shop, customer_ids=ids, today=ctx.today
            ),
            today=ctx.today,
            # Where a digest stands, its numbers (the ones "1 已发" refers to).
            numbers=digest_numbers(ctx),
        )
    ]


# --- payloads (pending questions are stored as JSON) ----------------------------------------


def _item_payload(item: OrderItem) -> dict[str, Any]:
    return {
        "customer": item.customer,
        "quantity": item.quantity,
        "unit": item.unit,
        "amount_cents": item.amount_cents,
        "order_on": item.order_on.isoformat() if item.order_on else None,
        "delivery_on": item.delivery_on.isoformat() if item.delivery_on else None,
        "note": item.note,
        "vague_day": item.vague_day,
    }


def _item_from_payload(payload: dict[str, Any]) -> OrderItem:
    def day(key: str) -> date | None:
        value = payload.get(key)
        return date.fromisoformat(value) if value else None

    return OrderItem(
        customer=str(payload["customer"]),
        quantity=int(payload["quantity"]),
        unit=str(payload["unit"]),
        amount_cents=payload.get("amount_cents"),
        order_on=day("order_on"),
        delivery_on=day("delivery_on"),
        note=payload.get("note"),
        vague_day=payload.get("vague_day"),
    )


def _intent_payload(intent: Intent) -> dict[str, Any]:
    return {
        "kind": intent.kind,
        "text": intent.text,
        "customer": intent.customer,
        "fields": dict(intent.fields),
    }


def _intent_from_payload(payload: dict[str, Any]) -> Intent:
    return Intent(
        kind=payload["kind"],
        text=payload["text"],
        customer=payload["customer"],
        fields=payload["fields"],
    )


def _describe(ctx: BotContext, matches: list[Match]) -> list[dict[str, str]]:
    described = []
    for match in matches[:CHOICES_SHOWN]:
        customer = ctx.session.get(Customer, match.customer_id)
        if customer is not None:
            described.append(
                {
                    "name": customer.name,
                    "address": customer.address or "",
                    "phone": mask_phone(customer.phone),
                }
            )
    return described


def _who(ctx: BotContext, customer: Customer, match: Match | None) -> str:
    """'王姐', or '王姐(王丽)' when the owner called her something else."""
    how = match.how if match else "name"
    return ctx.render("who", customer=customer, how=how, matched=match.matched if match else "")


# --- orders, tickets, deposits --------------------------------------------------------------


def _ordered_at(ctx: BotContext, item: OrderItem) -> datetime | None:
    if item.order_on is None:
        return None
    tz = ZoneInfo(ctx.shop.timezone)
    clock_time = ctx.clock.now().astimezone(tz).time()
    return datetime.combine(item.order_on, time(clock_time.hour, clock_time.minute), tzinfo=tz)


def _record_order(
    ctx: BotContext,
    customer: Customer,
    item: OrderItem,
    raw: str,
    *,
    who: str,
    by_tickets: bool = False,
) -> tuple[Order | None, list[str]]:
    """Write one order; return it and the words that confirm it (or why it was refused).
    `who`: the customer as the confirmation names them (_who)."""
    assert customer.id is not None
    # The same customer twice in one message: the first order's reassessment comes first.
    settle_refresh(session=ctx.session, customer_id=customer.id)
    try:
        recorded = record_order(
            session=ctx.session,
            shop=ctx.shop,
            customer=customer,
            quantity=item.quantity,
            unit=item.unit,
            amount_cents=0 if by_tickets else item.amount_cents,
            ordered_at=_ordered_at(ctx, item),
            clock=ctx.clock,
            raw_text=raw,
            inbox_id=ctx.inbox_id,
            staff_id=ctx.staff.id,
            source="chat",
            delivery_on=item.delivery_on,
            paid_by="tickets" if by_tickets else None,
        )
    except OrderError as exc:
        return None, [ctx.render("order_invalid", reason=str(exc))]
    order, before = recorded.order, recorded.prior
    previous_on = before.last_order_on
    usual = before.expected_interval_days if before.order_count > 1 else None
    ctx.changed = True
    gap = (order.order_date - previous_on).days if previous_on else None
    reply = ctx.render(
        "order_recorded",
        customer=customer,
        who=who,
        order=order,
        previous_on=previous_on if previous_on and previous_on <= order.order_date else None,
        gap_days=gap if gap is not None and gap >= 0 else None,
        usual_interval=usual,
        note=item.note,
        first=previous_on is None,
    )
    if item.vague_day:
        # "上周" named no day: say which one was recorded, and how to say it exactly.
        guessed = ctx.render(
            "order_day_guessed", said=item.vague_day, order=order, name=customer.name
        )
        reply = f"{reply}\n{guessed}"
    return order, [reply]


def _apply_item(
    ctx: BotContext, customer: Customer, match: Match | None, action: dict[str, Any]
) -> list[str]:
    """Carry out one order / ticket / deposit for a customer now known for sure."""
    assert customer.id is not None
    item = _item_from_payload(action["item"])
    kind = action["kind"]
    who = _who(ctx, customer, match)
    if kind == "order":
        _, replies = _record_order(ctx, customer, item, action["raw"], who=who)
        return replies
    if kind == "tickets_use":
        order, replies = _record_order(ctx, customer, item, action["raw"], who=who, by_tickets=True)
        if order is None:
            return replies
        ledger.record_event(
            ctx, "tickets", customer=customer, data={"change": -item.quantity, "order_id": order.id}
        )
        left = holdings_of.balance(ctx.session, ctx.shop_id, customer.id, "tickets")
        return [ctx.render("tickets_used", who=who, order=order, left=left)]
    if kind == "tickets_buy":
        ledger.record_event(
            ctx,
            "tickets",
            customer=customer,
            data={"change": item.quantity, "amount_cents": item.amount_cents},
        )
        left = holdings_of.balance(ctx.session, ctx.shop_id, customer.id, "tickets")
        return [ctx.render("tickets_bought", who=who, item=item, left=left)]
    change = item.quantity if kind == "deposit" else -item.quantity
    ledger.record_event(
        ctx,
        "deposit",
        customer=customer,
        data={
            "change": change,
            "amount_cents": item.amount_cents,
            "returned": kind == "deposit_return",
        },
    )
    held = holdings_of.balance(ctx.session, ctx.shop_id, customer.id, "deposit")
    return [ctx.render(kind, who=who, item=item, held=held, customer=customer)]


def _continue(ctx: BotContext, queue: list[dict[str, Any]]) -> list[str]:
    """Work through item actions whose customer was unclear, asking about one at a time."""
    replies: list[str] = []
    while queue:
        action = queue.pop(0)
        item = _item_from_payload(action["item"])
        matches = match_customers(session=ctx.session, shop=ctx.shop, query=item.customer)
        if matches and is_clear(matches):
            customer = ctx.session.get(Customer, matches[0].customer_id)
            assert customer is not None
            replies.extend(_apply_item(ctx, customer, matches[0], action))
        elif not matches:
            pending.ask(ctx, "create_for_item", {"action": action, "queue": queue})
            replies.append(ctx.render("ask_create_customer", item=item, kind=action["kind"]))
            break
        else:
            pending.ask(
                ctx,
                "choose_for_item",
                {
                    "action": action,
                    "queue": queue,
                    "candidates": [m.customer_id for m in matches[:CHOICES_SHOWN]],
                },
            )
            replies.append(
                ctx.render(
                    "ask_which_customer",
                    query=item.customer,
                    candidates=_describe(ctx, matches),
                    more=len(matches) > CHOICES_SHOWN,
                )
            )
            break
    return replies


def _items(ctx: BotContext, intent: Intent) -> list[str]:
    if not intent.items:
        return [ctx.render("need_quantity", kind=intent.kind, customer=intent.customer)]
    actions = [
        {"kind": intent.kind, "item": _item_payload(item), "raw": intent.text}
        for item in intent.items
    ]
    return _continue(ctx, actions)


@registry.command(
    "order", summary="记一单:客户名 + 数量(可带金额、日期,一次可记几单)", example="王姐 2桶"
)
def order(ctx: BotContext, intent: Intent) -> list[str]:
    return _items(ctx, intent)


@registry.command(
    "tickets_buy",
    summary="记买水票:张数和金额",
    example="王姐 买水票 20张 300元",
    verbs=TICKETS_BUY_WORDS,
    reader="items",
)
def tickets_buy(ctx: BotContext, intent: Intent) -> list[str]:
    return _items(ctx, intent)


@registry.command(
    "tickets_use",
    summary="用水票送水(不收钱,扣水票)",
    example="王姐 用水票 2桶",
    verbs=TICKETS_USE_WORDS,
    reader="items",
)
def tickets_use(ctx: BotContext, intent: Intent) -> list[str]:
    return _items(ctx, intent)


@registry.command(
    "deposit",
    summary="记押桶:个数和押金",
    example="王姐 押桶 2个 100元",
    verbs=DEPOSIT_WORDS,
    reader="items",
)
def deposit(ctx: BotContext, intent: Intent) -> list[str]:
    return _items(ctx, intent)


@registry.command(
    "deposit_return",
    summary="记退桶(常常是要走的信号)",
    example="王姐 退桶 1个",
    verbs=DEPOSIT_RETURN_WORDS,
    reader="items",
)
def deposit_return(ctx: BotContext, intent: Intent) -> list[str]:
    return _items(ctx, intent)


# --- cards and new customers ----------------------------------------------------------------


def _card(ctx: BotContext, customer: Customer) -> list[str]:
    assert customer.id is not None
    card = customer_card(session=ctx.session, customer=customer, today=ctx.today)
    held = holdings_of.holdings(ctx.session, ctx.shop_id, customer.id)
    return [
        ctx.render(
            "card",
            card=card,
            today=ctx.today,
            tickets=held.tickets,
            buckets=held.buckets,
            complaints=len(held.complaints),
            paused=customer.paused_until
            if customer.paused_until and customer.paused_until >= ctx.today
            else None,
            follow=contact_notes(
                session=ctx.session, shop=ctx.shop, customer_ids=[customer.id], today=ctx.today
            ).get(customer.id),
        )
    ]


@registry.command(
    "card",
    summary="看某位客户的情况:发客户名、别名、电话尾号或地址",
    example="王姐",
    prefixes=("查一下", "看看", "查查"),
)
def card(ctx: BotContext, intent: Intent) -> list[str]:
    query = intent.args
    matches = match_customers(session=ctx.session, shop=ctx.shop, query=query)
    if not matches:
        return [ctx.render("card_not_found", query=query)]
    if not is_clear(matches):
        pending.ask(
            ctx, "choose_for_card", {"candidates": [m.customer_id for m in matches[:CHOICES_SHOWN]]}
        )
        return [
            ctx.render(
                "ask_which_customer",
                query=query,
                candidates=_describe(ctx, matches),
                more=len(matches) > CHOICES_SHOWN,
            )
        ]
    customer = ctx.session.get(Customer, matches[0].customer_id)
    assert customer is not None
    return _card(ctx, customer)


@registry.command(
    "new_customer",
    summary="新建客户:名字 电话 地址(电话、地址可不填)",
    example="新客户 王姐 13800001234 幸福小区3栋",
    prefixes=("新客户", "新增客户", "添加客户", "加客户", "新建客户"),
)
def new_customer(ctx: BotContext, intent: Intent) -> list[str]:
    name = intent.fields.get("name") or ""
    existing = match_customers(session=ctx.session, shop=ctx.shop, query=name) if name else []
    if any(m.how == "name" for m in existing):
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
    ledger.link_new_customer(ctx, customer)
    return [ctx.render("customer_created", customer=customer, phone=mask_phone(customer.phone))]


# --- what happened with a customer ----------------------------------------------------------


def _for_customer(ctx: BotContext, intent: Intent) -> list[str]:
    """Resolve the customer a per-customer command is about, then act (or ask)."""
    if not intent.customer:
        command = registry.get(intent.kind)
        return [ctx.render("need_customer", example=command.example if command else "")]
    matches = match_customers(session=ctx.session, shop=ctx.shop, query=intent.customer)
    if not matches:
        return [ctx.render("card_not_found", query=intent.customer)]
    if not is_clear(matches):
        pending.ask(
            ctx,
            "choose_for_action",
            {
                "intent": _intent_payload(intent),
                "candidates": [m.customer_id for m in matches[:CHOICES_SHOWN]],
            },
        )
        return [
            ctx.render(
                "ask_which_customer",
                query=intent.customer,
                candidates=_describe(ctx, matches),
                more=len(matches) > CHOICES_SHOWN,
            )
        ]
    customer = ctx.session.get(Customer, matches[0].customer_id)
    assert customer is not None
    return _act(ctx, customer, matches[0], intent)


def _act(ctx: BotContext, customer: Customer, match: Match | None, intent: Intent) -> list[str]:
    who = _who(ctx, customer, match)
    fields = intent.fields
    kind = intent.kind
    if kind == "reaction":
        ledger.record_event(
            ctx,
            "interaction",
            customer=customer,
            data={"reaction": fields["reaction"], "text": fields.get("text", "")},
        )
        return [
            ctx.render(
                "reaction_recorded",
                who=who,
                reaction=fields["reaction"],
                text=fields.get("text", ""),
            )
        ]
    if kind == "recovered":
        ledger.record_event(
            ctx,
            "outcome",
            customer=customer,
            data={
                "outcome": "recovered",
                "text": fields.get("text", ""),
                "before": {"status": customer.status},
            },
        )
        customer.status = "active"
        return [ctx.render("recovered_recorded", who=who, customer=customer)]
    if kind == "lost":
        if not fields.get("reason"):
            pending.ask(
                ctx, "choose_reason", {"customer_id": customer.id, "text": fields.get("text", "")}
            )
            return [ctx.render("ask_reason", who=who, reasons=_reason_labels(ctx))]
        return _mark_lost(ctx, customer, who, fields["reason"], fields.get("text", ""))
    if kind == "pause":
        if not fields.get("until"):
            return [ctx.render("pause_unclear", who=who, text=fields.get("text", ""))]
        until = date.fromisoformat(fields["until"])
        before = customer.paused_until.isoformat() if customer.paused_until else None
        ledger.record_event(
            ctx,
            "pause",
            customer=customer,
            data={
                "until": until.isoformat(),
                "text": fields.get("text", ""),
                "before": {"paused_until": before},
            },
        )
        customer.paused_until = until
        return [
            ctx.render("pause_recorded", who=who, until=until, days=(until - ctx.today).days + 1)
        ]
    if kind == "complaint":
        ledger.record_event(
            ctx, "complaint", customer=customer, data={"text": fields.get("text", "")}
        )
        assert customer.id is not None
        open_count = len(holdings_of.open_complaints(ctx.session, ctx.shop_id, customer.id))
        return [
            ctx.render(
                "complaint_recorded",
                who=who,
                customer=customer,
                text=fields.get("text", ""),
                open_count=open_count,
            )
        ]
    if kind == "complaint_resolved":
        assert customer.id is not None
        still_open = holdings_of.open_complaints(ctx.session, ctx.shop_id, customer.id)
        if not still_open:
            return [ctx.render("no_open_complaint", who=who)]
        ledger.record_event(
            ctx,
            "complaint_resolved",
            customer=customer,
            data={"complaint_ids": [e.id for e in still_open], "text": fields.get("text", "")},
        )
        return [ctx.render("complaint_resolved", who=who, count=len(still_open))]
    if kind in ("set_aside", "value_class"):
        return _set_class(ctx, customer, who, str(fields.get("value_class") or SET_ASIDE_CLASS))
    if kind == "restore":
        return _restore_reminders(ctx, customer, who)
    # satisfaction
    score = fields.get("score")
    if score is None:
        return [ctx.render("score_unclear", who=who, customer=customer)]
    ledger.record_event(
        ctx,
        "satisfaction",
        customer=customer,
        data={"score": int(score), "text": fields.get("text", "")},
    )
    return [
        ctx.render(
            "satisfaction_recorded", who=who, score=int(score), low=int(score) < LOW_SATISFACTION
        )
    ]


def _set_class(ctx: BotContext, customer: Customer, who: str, value_class: str) -> list[str]:
    """The owner's class for a customer; D sets them aside (off every list and digest)."""
    mine = OWNER_CLASS_TAG in customer.tags or customer.value_class == SET_ASIDE_CLASS
    if customer.value_class == value_class and mine:
        return [ctx.render("class_unchanged", who=who, value_class=value_class)]
    before = set_value_class(session=ctx.session, customer=customer, value_class=value_class)
    ledger.record_event(
        ctx,
        "value_class",
        customer=customer,
        data={"value_class": value_class, "before": before},
    )
    return [
        ctx.render(
            "class_set",
            who=who,
            customer=customer,
            value_class=value_class,
            was=before["value_class"],
            set_aside=SET_ASIDE_CLASS,
        )
    ]


_EV = Event.__table__  # type: ignore[attr-defined]
# A customer's class changes, newest first (what 恢复提醒 goes back to).
_CLASS_CHANGES = (
    select(_EV.c.id, _EV.c.data)
    .where(
        _EV.c.shop_id == bindparam("shop"),
        _EV.c.customer_id == bindparam("cid"),
        _EV.c.kind == "value_class",
    )
    .order_by(_EV.c.id.desc())
)


def _restore_reminders(ctx: BotContext, customer: Customer, who: str) -> list[str]:
    """Bring a set-aside customer back: the class they had before 不用追了 (C, for the
    engine to rank, when that was never recorded here)."""
    paused = customer.paused_until
    paused = paused if paused is not None and paused >= ctx.today else None
    if customer.value_class != SET_ASIDE_CLASS:
        return [ctx.render("restore_nothing", who=who, customer=customer, paused=paused)]
    params = {"shop": ctx.shop_id, "cid": customer.id}
    earlier: dict[str, Any] = {}
    for _, data in live_rows(ctx.session, ctx.shop_id, _CLASS_CHANGES, params):
        if data.get("value_class") == SET_ASIDE_CLASS:
            earlier = dict(data.get("before") or {})
            break
    now = {"value_class": customer.value_class, "by_owner": OWNER_CLASS_TAG in customer.tags}
    restore_value_class(session=ctx.session, customer=customer, before=earlier)
    ledger.record_event(
        ctx,
        "value_class",
        customer=customer,
        data={"value_class": customer.value_class, "restored": True, "before": now},
    )
    return [ctx.render("restored", who=who, customer=customer, paused=paused)]


def _reason_labels(ctx: BotContext) -> list[str]:
    table = REASONS.get(ctx.shop.industry, REASONS["water"])
    return [label for label, _ in table]


def _mark_lost(ctx: BotContext, customer: Customer, who: str, reason: str, text: str) -> list[str]:
    unavoidable = reason in UNAVOIDABLE_REASONS
    ledger.record_event(
        ctx,
        "outcome",
        customer=customer,
        data={
            "outcome": "lost",
            "reason": reason,
            "text": text,
            "unavoidable": unavoidable,
            "before": {"status": customer.status},
        },
    )
    customer.status = "lost"
    return [ctx.render("lost_recorded", who=who, reason=reason, unavoidable=unavoidable)]


@registry.command(
    "reaction",
    summary="记客户对问候的反应:回复了/没回/冷淡",
    example="王姐 回复了",
    verbs=tuple(REACTION_WORDS),
    reader="reaction",
)
def reaction(ctx: BotContext, intent: Intent) -> list[str]:
    return _for_customer(ctx, intent)


@registry.command(
    "recovered", summary="记客户已挽回", example="王姐 已挽回", verbs=RECOVERED_WORDS, reader="text"
)
def recovered(ctx: BotContext, intent: Intent) -> list[str]:
    return _for_customer(ctx, intent)


@registry.command(
    "lost",
    summary="记客户流失和原因(价格/送水慢/水质/别家/搬家…)",
    example="王姐 流失 价格",
    verbs=LOST_WORDS,
    reader="reason",
)
def lost(ctx: BotContext, intent: Intent) -> list[str]:
    return _for_customer(ctx, intent)


@registry.command(
    "pause",
    summary="客户出远门等,暂停提醒到某天",
    example="王姐 暂停 到月底",
    verbs=PAUSE_WORDS,
    reader="until",
)
def pause(ctx: BotContext, intent: Intent) -> list[str]:
    return _for_customer(ctx, intent)


@registry.command(
    "complaint",
    summary="记投诉(解决前一直算高风险)",
    example="王姐 投诉 送水慢",
    verbs=COMPLAINT_WORDS,
    reader="text",
)
def complaint(ctx: BotContext, intent: Intent) -> list[str]:
    return _for_customer(ctx, intent)


@registry.command(
    "complaint_resolved",
    summary="投诉处理好了",
    example="王姐 投诉已解决",
    verbs=RESOLVED_WORDS,
    reader="text",
)
def complaint_resolved(ctx: BotContext, intent: Intent) -> list[str]:
    return _for_customer(ctx, intent)


@registry.command(
    "satisfaction",
    summary="记满意度(0到10分)",
    example="王姐 满意度 6",
    verbs=SATISFACTION_WORDS,
    reader="score",
)
def satisfaction(ctx: BotContext, intent: Intent) -> list[str]:
    return _for_customer(ctx, intent)


@registry.command(
    "set_aside",
    summary="这位客户不用追了:不再提醒,名单和早上的提醒里都不出现(D类)",
    example="王姐 不用追了",
    verbs=SET_ASIDE_WORDS,
    reader="class",
)
def set_aside(ctx: BotContext, intent: Intent) -> list[str]:
    return _for_customer(ctx, intent)


@registry.command(
    "restore",
    summary="不追的客户恢复提醒",
    example="王姐 恢复提醒",
    verbs=RESTORE_WORDS,
    reader="text",
)
def restore(ctx: BotContext, intent: Intent) -> list[str]:
    return _for_customer(ctx, intent)


@registry.command(
    "value_class",
    summary="自己给客户定A/B/C类(A类快流失时由您亲自跟进),系统不再自动改",
    example="王姐 A类",
    verbs=tuple(VALUE_CLASS_WORDS),
    reader="class",
)
def value_class(ctx: BotContext, intent: Intent) -> list[str]:
    return _for_customer(ctx, intent)


# --- half quantities ------------------------------------------------------------------------


@registry.command("half_quantity", listed=False)
def half_quantity(ctx: BotContext, intent: Intent) -> list[str]:
    """An order of "一桶半": orders count whole units; ask which, never round quietly."""
    options = list(intent.fields["options"])
    pending.ask(ctx, "half_quantity", {"raw": intent.text, "options": [o["text"] for o in options]})
    return [ctx.render("ask_whole_quantity", said=intent.fields["said"], options=options)]


@pending.answers("half_quantity")
def _whole_quantity_chosen(ctx: BotContext, payload: dict[str, Any], number: int) -> list[str]:

    options = list(payload["options"])
    if not 1 <= number <= len(options):
        pending.ask(ctx, "half_quantity", payload)
        return [ctx.render("choice_out_of_range", count=len(options))]
    chosen = parse(options[number - 1], vocab=vocabulary_for(ctx), today=ctx.today)
    # The order keeps what the owner wrote ("王姐 一桶半"), not our rewording.
    return _items(ctx, replace(chosen, text=str(payload["raw"])))


# --- reminder settings ----------------------------------------------------------------------

# The owner's word for each threshold: the first SETTING_WORDS word that names it.
SETTING_LABELS = {
    key: next(word for word, named in SETTING_WORDS.items() if named == key)
    for key in dict.fromkeys(SETTING_WORDS.values())
}


def _settings_view(ctx: BotContext) -> list[dict[str, Any]]:
    config = reminder_settings(ctx.shop)
    return [
        {
            "key": key,
            "label": SETTING_LABELS[key],
            "value": getattr(config, key),
            "low": spec.low,
            "high": spec.high,
            "whole": spec.whole,
        }
        for key, spec in REMINDER_SETTINGS.items()
    ]


@registry.command(
    "settings",
    summary="看、改提醒标准(超过平时间隔几倍提醒您跟进)",
    example="设置 提醒倍数 1.8",
    phrases=("设置", "提醒设置", "查看设置", "看设置"),
    prefixes=("设置",),
)
def settings_(ctx: BotContext, intent: Intent) -> list[str]:
    config = reminder_settings(ctx.shop)
    if not intent.args:
        return [ctx.render("settings_shown", settings=_settings_view(ctx), config=config)]
    key, value = intent.fields.get("setting"), intent.fields.get("value")
    if key is None or value is None:
        return [ctx.render("setting_unclear", label=SETTING_LABELS.get(str(key)), text=intent.args)]
    reply, before = change_setting(
        ctx.render, session=ctx.session, shop=ctx.shop, key=key, value=float(value), clock=ctx.clock
    )
    if before is not None:
        after = ctx.shop.settings[key]
        ledger.record_event(ctx, "settings", data={"key": key, "value": after, "before": before})
    return [reply]


def change_setting(
    render: Callable[..., str],
    *,
    session: Session,
    shop: Shop,
    key: str,
    value: float,
    clock: Clock,
) -> tuple[str, dict[str, Any] | None]:
    """Change one reminder threshold for the owner (设置 in chat, huitou backtest --shop):
    checked, saved and the shop rescored by set_reminder_setting, then said in the owner's
    words with today's follow-up list before and after. `render(name, **context)` renders
    bot/<name>.txt.j2 for the shop. Returns the reply and the shop's own setting as it was
    (for undo), or None as the second item when refused (nothing changed)."""
    config = reminder_settings(shop)
    label = SETTING_LABELS[key]
    current = getattr(config, key)
    today = local_today(clock, shop.timezone)
    due_before = len(due_list(session=session, shop=shop, today=today))
    try:
        before = set_reminder_setting(session=session, shop=shop, key=key, value=value, clock=clock)
    except SettingRefused as refused:
        spec = refused.setting
        refusal = render(
            "setting_refused",
            label=label,
            value=value,
            current=current,
            low=spec.low,
            high=spec.high,
            whole=spec.whole,
            clash=SETTING_LABELS.get(refused.clash or ""),
            clash_value=getattr(config, refused.clash) if refused.clash else None,
            clash_higher=refused.clash_higher,
        )
        return refusal, None
    due_after = len(due_list(session=session, shop=shop, today=today))
    changed = render(
        "setting_changed",
        key=key,
        label=label,
        was=current,
        now=shop.settings[key],
        due_before=due_before,
        due_after=due_after,
    )
    return changed, before


# --- undo, statistics, help -----------------------------------------------------------------


@registry.command(
    "undo",
    summary="撤回刚才记的(10分钟内)",
    example="撤销",
    phrases=(
        "撤销",
        "撤消",
        "撤回",
        "撤销上一条",
        "撤销刚才",
        "刚才记错了",
        "记错了",
        "删掉刚才的",
        "undo",
    ),
)
def undo(ctx: BotContext, intent: Intent) -> list[str]:
    change = ledger.last_change(ctx)
    if change is None:
        return [ctx.render("nothing_to_undo")]
    age = ctx.clock.now() - change.received_at
    if age > ledger.UNDO_WINDOW:
        return [
            ctx.render(
                "undo_too_late",
                body=change.body,
                minutes=int(ledger.UNDO_WINDOW.total_seconds() // 60),
            )
        ]
    names: dict[int | None, str] = {}
    for order_row in change.orders:
        owner = ctx.session.get(Customer, order_row.customer_id)
        names[order_row.id] = owner.name if owner else ""
    orders = [{"name": names[o.id], "order": o} for o in change.orders]
    _put_back(ctx, change.events)
    ledger.undo(ctx, change)
    return [ctx.render("undone", body=change.body, orders=orders, events=len(change.events))]


def _put_back(ctx: BotContext, events: list[Event]) -> None:
    """What ledger.undo does not restore itself: a value class, a reminder threshold."""
    for event in reversed(events):  # newest first, so each ends at its oldest "before"
        before = dict(event.data.get("before") or {})
        if event.kind == "value_class" and event.customer_id is not None:
            customer = ctx.session.get(Customer, event.customer_id)
            if customer is not None:
                restore_value_class(session=ctx.session, customer=customer, before=before)
        elif event.kind == "settings":
            write_reminder_settings(
                session=ctx.session, shop=ctx.shop, values=before, clock=ctx.clock
            )


def _month(ctx: BotContext, months_back: int) -> list[str]:
    # The month summary plus churn split, process, win-backs and money (app/reports/);
    # imported here so the report commands register after these (帮助 keeps its order).
    from app.bot.report_commands import month_report_replies

    return month_report_replies(ctx, months_back)


@registry.command(
    "month_stats",
    summary="本月到今天的统计",
    example="本月统计",
    phrases=(
        "本月统计",
        "这个月统计",
        "本月",
        "这个月",
        "月报",
        "本月数据",
        "统计",
        "本月情况",
        "这个月怎么样",
    ),
)
def month_stats(ctx: BotContext, intent: Intent) -> list[str]:
    return _month(ctx, 0)


@registry.command(
    "last_month_stats",
    summary="上个月的统计",
    example="上月统计",
    phrases=("上月统计", "上个月统计", "上月", "上个月", "上月数据", "上个月怎么样", "上月情况"),
)
def last_month_stats(ctx: BotContext, intent: Intent) -> list[str]:
    return _month(ctx, 1)


@registry.command(
    "help",
    summary="看我能做什么",
    example="帮助",
    phrases=("帮助", "help", "菜单", "怎么用", "你能做什么", "说明", "?", "功能", "使用说明"),
)
def help_(ctx: BotContext, intent: Intent) -> list[str]:
    return [ctx.render("help", commands=registry.listed())]


# --- answers to the bot's questions ---------------------------------------------------------


def _chosen(ctx: BotContext, candidates: list[int], number: int) -> Customer | None:
    customer = ctx.session.get(Customer, candidates[number - 1])
    return customer if customer is not None and customer.shop_id == ctx.shop_id else None


@registry.command("choice", listed=False)
def choice(ctx: BotContext, intent: Intent) -> list[str]:
    question = pending.take(ctx)
    if question is None:
        return [ctx.render("no_pending")]
    payload = question.payload
    number = intent.number or 0
    answer = pending.answerer(question.kind)
    if answer is not None:
        return answer(ctx, payload, number)
    if question.kind == "create_for_item":
        if number != 1:
            pending.ask(ctx, question.kind, payload)
            return [ctx.render("choice_out_of_range", count=1)]
        action = payload["action"]
        item = _item_from_payload(action["item"])
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
        ledger.link_new_customer(ctx, customer)
        return [
            ctx.render("customer_created_short", customer=customer),
            *_apply_item(ctx, customer, None, action),
            *_continue(ctx, list(payload.get("queue", []))),
        ]
    if question.kind == "choose_reason":
        labels = _reason_labels(ctx)
        if not 1 <= number <= len(labels):
            pending.ask(ctx, question.kind, payload)
            return [ctx.render("choice_out_of_range", count=len(labels))]
        marked = ctx.session.get(Customer, payload["customer_id"])
        if marked is None or marked.shop_id != ctx.shop_id:
            return [ctx.render("no_pending")]
        return _mark_lost(ctx, marked, marked.name, labels[number - 1], payload["text"])
    candidates: list[int] = list(payload.get("candidates", []))
    if not 1 <= number <= len(candidates):
        pending.ask(ctx, question.kind, payload)
        return [ctx.render("choice_out_of_range", count=len(candidates))]
    chosen = _chosen(ctx, candidates, number)
    if chosen is None:
        return [ctx.render("no_pending")]
    if question.kind == "choose_for_item":
        return [
            *_apply_item(ctx, chosen, None, payload["action"]),
            *_continue(ctx, list(payload.get("queue", []))),
        ]
    if question.kind == "choose_for_action":
        return _act(ctx, chosen, None, _intent_from_payload(payload["intent"]))
    return _card(ctx, chosen)


@registry.command("cancel", listed=False)
def cancel(ctx: BotContext, intent: Intent) -> list[str]:
    question = pending.take(ctx)
    if question is None:
        return [ctx.render("no_pending")]
    # Several unclear names in one message: skipping one moves on to the next.
    return [ctx.render("cancelled"), *_continue(ctx, list(question.payload.get("queue", [])))]


@registry.command("empty", listed=False)
def empty(ctx: BotContext, intent: Intent) -> list[str]:
    return [ctx.render("empty", examples=[c.example for c in registry.listed()][:6])]


@registry.command("unknown", listed=False)
def unknown(ctx: BotContext, intent: Intent) -> list[str]:
    # Nothing the owner writes is dropped: what we cannot read is kept on the shop's log.
    ledger.record_event(ctx, "note", data={"text": intent.text})
    ctx.changed = False
    return [
        ctx.render(
            "not_understood",
            text=intent.text,
            examples=[c.example for c in registry.listed()][:6],
        )
    ]


@registry.command("too_long", listed=False)
def too_long(ctx: BotContext, intent: Intent) -> list[str]:
    return [ctx.render("too_long")]


__all__ = ["registry"]
