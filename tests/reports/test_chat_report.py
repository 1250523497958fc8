"""The report in chat on the hand-counted shop: 本月统计, 本周名单, 报表, 统计图."""

from __future__ import annotations

from dataclasses import fields
from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from app.bot.context import BotContext, capture_side_output
from app.bot.core import handle
from app.clock import FixedClock
from app.config import Settings
from app.db import read_session, write_session
from app.outreach.links import LinkError, link_secret, read_report
from app.reports.metrics import ChatReport, ShopReport, Warnings, build_chat_report, build_report
from app.reports.monthly import month_of
from app.reports.wording import report_labels
from app.shops.models import Shop
from app.shops.service import owner_of
from tests.reports.conftest import Scenario

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_this_month_text(scenario: Scenario) -> None:
    reply = scenario.say("本月统计")
    assert reply.startswith("📊 2026年6月(到6月17日)")
    # The existing summary, with the definition of the churn rate.
    assert "月流失率 33.3%(本月流失 3 位 ÷ 月初老客户 9 位)" in reply
    assert "月初老客户 = 月初之前下过单、当时没流失的客户。" in reply
    assert "· 价格 2位(67%)" in reply and "· 搬家/倒闭 1位(33%)" in reply
    # Avoidable vs moved/closed, and last month to compare with.
    assert "其中能挽回的 2 位,搬家/倒闭 1 位" in reply
    assert "对比:5月流失率 10.0%" in reply
    # Process: 4 warnings, 1 in time (of 3 whose 48 h are over), 1 late, 1 missed.
    assert "⏱ 预警 4 位,48小时内联系上 1 位(33.3%)" in reply
    assert "晚了 1 位,没联系 1 位" in reply
    assert "🤝 本月联系了 3 位,已经回来 1 位(33.3%)" in reply
    for line in ("· 微信问候:0/1", "· 电话:1/1", "· 上门/优惠:0/1"):
        assert line in reply
    assert "💰 优惠花了 20元,挽回的客户90天内带回 150元(花1元,回来7.5元)" in reply
    assert "挽回的 1 位,往后一年预计还值" in reply
    assert '发"统计图"看图' in reply
    assert "撤销" not in reply  # a read: nothing to undo


def _owner_context(
    session: Session, shop: Shop, clock: FixedClock, settings: Settings
) -> BotContext:
    return BotContext(
        session=session,
        shop=shop,
        staff=owner_of(session=session, shop=shop),
        sender_key="test:owner",
        clock=clock,
        templates_dir=settings.templates_dir,
        settings=settings,
    )


def _texts_of_both_reports(
    engine: Engine, shop_id: int | None, clock: FixedClock, settings: Settings, months_back: int
) -> tuple[ShopReport, ChatReport, str, str]:
    """The full report and the chat report of one month, and the 本月统计 text of each."""
    with read_session(engine) as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        ctx = _owner_context(session, shop, clock, settings)
        first_day = month_of(ctx.today, months_back)
        full = build_report(session=session, shop=shop, first_day=first_day, clock=clock)
        chat = build_chat_report(session=session, shop=shop, first_day=first_day, clock=clock)
        labels = report_labels(settings.templates_dir, shop)
        texts = [
            ctx.render("report_month", r=r, m=r.summary, today=ctx.today, labels=labels)
            for r in (full, chat)
        ]
    return full, chat, texts[0], texts[1]


def _assert_chat_report_is_the_full_reports(full: ShopReport, chat: ChatReport) -> None:
    assert chat.summary == full.summary
    assert (chat.month, chat.previous) == (full.month, full.previous)
    assert chat.unmarked_lost == full.unmarked_lost
    for field in fields(Warnings):
        assert getattr(chat.process, field.name) == getattr(full.process, field.name), field.name
    assert chat.by_tier == full.by_tier
    assert chat.money == full.money


@pytest.mark.parametrize("months_back", [0, 1, 2])
def test_chat_report_shows_the_full_reports_figures(
    scenario: Scenario, months_back: int, settings: Settings
) -> None:
    """本月统计 computes only what its text shows: the same figures, the same text."""
    # An undone mark must be left out by both.
    scenario.say("陈老板 流失 价格")
    scenario.say("撤销")
    full, chat, full_text, chat_text = _texts_of_both_reports(
        scenario.engine, scenario.shop.id, scenario.clock, settings, months_back
    )
    _assert_chat_report_is_the_full_reports(full, chat)
    assert chat_text == full_text
    if months_back == 0:
        assert chat_text == scenario.say("本月统计")


@pytest.mark.parametrize("months_back", [0, 1])
def test_chat_report_on_the_demo_shop(
    engine: Engine, demo_shop: Shop, clock: FixedClock, settings: Settings, months_back: int
) -> None:
    full, chat, full_text, chat_text = _texts_of_both_reports(
        engine, demo_shop.id, clock, settings, months_back
    )
    _assert_chat_report_is_the_full_reports(full, chat)
    assert chat.summary.orders > 0  # a shop with figures, not an empty month
    assert chat_text == full_text


def test_last_month_text(scenario: Scenario) -> None:
    reply = scenario.say("上月统计")
    assert reply.startswith("📊 2026年5月\n")
    assert "月流失率 10.0%(本月流失 1 位 ÷ 月初老客户 10 位)" in reply
    assert "其中能挽回的 1 位,搬家/倒闭 0 位" in reply
    assert "🤝 本月还没联系过要挽回的客户" in reply


def test_weekly_list_text(scenario: Scenario) -> None:
    reply = scenario.say("本周名单")
    assert reply.startswith("📋 本周名单(6月17日)")
    assert "最近流失的 4 位,一起看看有没有共同原因:" in reply
    assert "· 冯阿姨 6月12日 价格(最后一单4月20日,共2单)" in reply
    assert "· 李哥 6月8日 搬家/倒闭" in reply
    assert '👉 有 2 位都是因为"价格",值得先从这儿改起。' in reply
    # Those already lost are not on the list to message.
    to_message = reply.split("最近流失")[0]
    for lost in ("冯阿姨", "李哥", "王姐", "赵姨"):
        assert lost not in to_message


def test_report_link_is_signed_for_this_shop_and_month(
    scenario: Scenario, settings: Settings
) -> None:
    reply = scenario.say("报表")
    url = next(w for w in reply.split() if w.startswith("http"))
    assert url.startswith(settings.public_url.rstrip("/") + "/r/")
    token = urlsplit(url).path.removeprefix("/r/")
    link = read_report(link_secret(settings), token, now=scenario.clock.now())
    assert link.shop_id == scenario.shop.id and link.month == date(2026, 6, 1)
    hours = settings.link_ttl_hours
    assert f"{hours} 小时内有效" in reply
    later = scenario.clock.now() + timedelta(hours=hours, seconds=1)
    with pytest.raises(LinkError, match="过期"):
        read_report(link_secret(settings), token, now=later)


def test_chart_command_attaches_a_png(scenario: Scenario, settings: Settings) -> None:
    with capture_side_output(settings) as side:
        reply = scenario.chat.say("统计图")
    assert reply.startswith("📈 2026年6月统计图")
    assert "/r/" in reply  # a link for channels that cannot show the picture
    assert len(side.images) == 1
    image = side.images[0]
    assert image.filename == "report-2026-06-hand.png"
    assert "月流失率 33.3%(流失 3 位,其中搬家/倒闭 1 位;月初老客户 9 位)" in image.alt
    assert "联系 3 位、回来 1 位" in image.alt
    assert image.png.startswith(PNG_SIGNATURE)
    assert image.alt in reply


def test_images_go_on_the_context_for_channels(scenario: Scenario, settings: Settings) -> None:
    """The interface a channel uses: handle(ctx, text), then ctx.images."""
    with write_session(scenario.engine) as session:
        shop = session.get(Shop, scenario.shop.id)
        assert shop is not None
        ctx = _owner_context(session, shop, scenario.clock, settings)
        replies = handle(ctx, "统计图")
        assert len(replies) == 1 and len(ctx.images) == 1
        assert ctx.images[0].png.startswith(PNG_SIGNATURE)
        assert handle(ctx, "本月统计") and len(ctx.images) == 1  # text only


def test_saving_an_image_stays_in_its_folder(
    scenario: Scenario, settings: Settings, tmp_path: object
) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "images"
    with capture_side_output(settings) as side:
        scenario.chat.say("统计图")
    image = side.images[0]
    image.filename = "../../escape.png"
    path = image.save(folder)
    assert path.parent == folder and path.read_bytes().startswith(PNG_SIGNATURE)


def test_new_words_are_in_help(scenario: Scenario) -> None:
    reply = scenario.say("帮助")
    for word in ("统计图", "报表", "本周名单"):
        assert word in reply
