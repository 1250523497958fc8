"""Chat replies to the morning digest: "1 已发", "2 回复了", "3 流失 价格"."""

from __future__ import annotations

from app.bot.context import BotContext
from app.bot.numbers import latest_digest
from app.bot.parse import Intent
from app.bot.registry import registry
from app.outreach.outcomes import OutcomeError, add_offer_cost, apply_choice, confirmation


# A numbered reply refers to the person's latest digest, if it is this recent.
@registry.command(
    "digest_reply",
    summary="按早上提醒里的编号记跟进结果:已发/回复了/没回/冷淡/打了/已挽回/流失 原因;"
    "送了优惠就带上花费,如“3 上门了 送券20元”“3 花了30元”",
    example="1 已发",
)
def digest_reply(ctx: BotContext, intent: Intent) -> list[str]:
    number = intent.number or 0
    latest = latest_digest(ctx)
    if latest is None:
        return [ctx.render("digest_reply_no_digest")]
    delivery, run_date = latest
    item = next((i for i in delivery.items if int(i.get("number", 0)) == number), None)
    if item is None:
        return [ctx.render("digest_reply_no_number", number=number, run_date=run_date)]
    outcome = str(intent.fields["outcome"])
    if outcome == "lost" and not intent.fields.get("reason"):
        return [ctx.render("digest_reply_need_reason", number=number, title=item["title"])]
    arg = intent.fields.get("reason")
    cost = intent.fields.get("cost_cents")
    try:
        if outcome == "cost":
            recorded = add_offer_cost(
                session=ctx.session,
                shop=ctx.shop,
                staff=ctx.staff,
                followup_id=int(item["followup_id"]),
                cost_cents=int(cost or 0),
                clock=ctx.clock,
                source="chat",
                inbox_id=ctx.inbox_id,
            )
        else:
            recorded = apply_choice(
                session=ctx.session,
                shop=ctx.shop,
                staff=ctx.staff,
                followup_id=int(item["followup_id"]),
                outcome=outcome,
                arg=str(arg) if arg else None,
                clock=ctx.clock,
                source="chat",
                inbox_id=ctx.inbox_id,
                cost_cents=int(cost) if cost else None,
            )
    except OutcomeError as exc:
        return [ctx.render("digest_reply_refused", number=number, why=str(exc))]
    ctx.changed = True
    return [ctx.render("digest_reply_recorded", text=confirmation(recorded), outcome=outcome)]
