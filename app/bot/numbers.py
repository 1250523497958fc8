"""The numbers an owner replies with ("1 已发"): those of their latest morning digest.

The chat's 今天该跟进谁 is computed anew and may list other people, or the same people in
another order, than the digest pushed that morning; where a digest stands, the chat list
shows each customer's digest number, so the number an owner reads is the one that counts.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import col, select

from app.bot.context import BotContext
from app.digest.models import DigestDelivery, DigestRun
from app.outreach.models import FollowUp

REPLY_WINDOW_DAYS = 7


def latest_digest(ctx: BotContext) -> tuple[DigestDelivery, date] | None:
    """The sender's latest digest within the reply window, and its day."""
    row = ctx.session.exec(
        select(DigestDelivery, col(DigestRun.run_date))
        .join(DigestRun, col(DigestRun.id) == col(DigestDelivery.run_id))
        .where(
            DigestRun.shop_id == ctx.shop_id,
            DigestDelivery.staff_id == ctx.staff.id,
            col(DigestRun.run_date) >= ctx.today - timedelta(days=REPLY_WINDOW_DAYS),
        )
        .order_by(col(DigestRun.run_date).desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def digest_numbers(ctx: BotContext) -> dict[int, int] | None:
    """Customer id -> their number in the sender's latest digest; None without a digest."""
    latest = latest_digest(ctx)
    if latest is None:
        return None
    by_followup = {
        int(item["followup_id"]): int(item["number"])
        for item in latest[0].items
        if item.get("followup_id") is not None
    }
    if not by_followup:
        return {}
    rows = ctx.session.exec(
        select(FollowUp.id, FollowUp.customer_id).where(col(FollowUp.id).in_(by_followup))
    )
    return {customer_id: by_followup[fid] for fid, customer_id in rows if fid is not None}
