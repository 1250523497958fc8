"""The report in chat: 本月统计 text (via commands.py), 统计图 (a picture), 报表 (a signed link
to the phone dashboard) and 本周名单 (the weekly habit: who to message, the last lost)."""

from __future__ import annotations

from datetime import timedelta

from app.bot.context import BotContext, ChatImage
from app.bot.parse import Intent
from app.bot.registry import registry
from app.outreach.links import link_secret, report_token
from app.reports.metrics import ShopReport, build_chat_report, build_report, weekly_list
from app.reports.monthly import month_of
from app.reports.wording import render_report_text, report_labels


def _report(ctx: BotContext, months_back: int) -> ShopReport:
    return build_report(
        session=ctx.session,
        shop=ctx.shop,
        first_day=month_of(ctx.today, months_back),
        clock=ctx.clock,
        with_weekly=False,
    )


def dashboard_url(ctx: BotContext, months_back: int = 0) -> tuple[str, int]:
    """A signed, expiring, read-only link to this shop's dashboard, and its hours of validity."""
    settings = ctx.service_settings()
    hours = settings.link_ttl_hours
    token = report_token(
        link_secret(settings),
        shop_id=ctx.shop_id,
        month=month_of(ctx.today, months_back),
        now=ctx.clock.now(),
        ttl=timedelta(hours=hours),
    )
    return f"{settings.public_url.rstrip('/')}/r/{token}", hours


def month_report_replies(ctx: BotContext, months_back: int) -> list[str]:
    """本月统计 / 上月统计: the month's figures with the churn definition, in one message.

    The text shows part of the report (the chart and the dashboard show all of it): only
    that part is computed, as the full report computes it.
    """
    report = build_chat_report(
        session=ctx.session,
        shop=ctx.shop,
        first_day=month_of(ctx.today, months_back),
        clock=ctx.clock,
    )
    labels = report_labels(ctx.templates_dir, ctx.shop)
    return [ctx.render("report_month", r=report, m=report.summary, today=ctx.today, labels=labels)]


@registry.command(
    "report_chart",
    summary="本月统计图(流失率走势、流失原因、挽回率)",
    example="统计图",
    phrases=("统计图", "本月统计图", "图表", "看图", "报表图", "趋势图", "流失率图", "月报图"),
)
def report_chart(ctx: BotContext, intent: Intent) -> list[str]:
    report = _report(ctx, 0)
    labels = report_labels(ctx.templates_dir, ctx.shop)
    alt = render_report_text(ctx.templates_dir, ctx.shop, "chart_alt", r=report, labels=labels)

    def draw() -> bytes:
        from app.reports.charts import report_png

        return report_png(report, labels)

    first = report.month.first_day
    ctx.attach_image(
        ChatImage(alt=alt, filename=f"report-{first:%Y-%m}-{ctx.shop.slug}.png", draw=draw)
    )
    url, hours = dashboard_url(ctx)
    return [ctx.render("report_chart", r=report, labels=labels, alt=alt, url=url, hours=hours)]


@registry.command(
    "report_link",
    summary="手机上看完整报表(带图,链接有时效)",
    example="报表",
    phrases=("报表", "看报表", "完整报表", "报表链接", "数据看板", "看板", "本月报表"),
)
def report_link(ctx: BotContext, intent: Intent) -> list[str]:
    url, hours = dashboard_url(ctx)
    labels = report_labels(ctx.templates_dir, ctx.shop)
    return [ctx.render("report_link", url=url, hours=hours, month=labels.month(ctx.today))]


@registry.command(
    "weekly_list",
    summary="本周名单:先联系哪10位,最近流失的5位有什么共同原因",
    example="本周名单",
    phrases=("本周名单", "这周名单", "每周名单", "周名单", "本周该联系谁", "这周联系谁", "周报"),
)
def weekly(ctx: BotContext, intent: Intent) -> list[str]:
    week = weekly_list(session=ctx.session, shop=ctx.shop, today=ctx.today)
    return [ctx.render("report_weekly", w=week, today=ctx.today)]
