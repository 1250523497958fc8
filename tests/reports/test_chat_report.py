"""The report in chat on the hand-counted shop: 本月统计, 本周名单, 报表, 统计图."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest

from app.bot.context import BotContext, capture_side_output
from app.bot.core import handle
from app.config import Settings
from app.db import write_session
from app.outreach.links import LinkError, link_secret, read_report
from app.shops.models import Shop
from app.shops.service import owner_of
from tests.reports.conftest import Scenario

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_this_month_text(scenario: Scenario) -> None:
    reply = scenario.say("本月统计")
    assert reply.startswith("📊 2026年6月(到6月17日)")
    # The existing summary, with the definition of the churn rate.
    assert "月流失率 33.3%(本月标记流失 3 位 ÷ 月初老客户 9 位)" in reply
    assert "月初老客户 = 月初之前下过单、当时没被标记流失的客户。" in reply
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


def test_last_month_text(scenario: Scenario) -> None:
    reply = scenario.say("上月统计")
    assert reply.startswith("📊 2026年5月\n")
    assert "月流失率 10.0%(本月标记流失 1 位 ÷ 月初老客户 10 位)" in reply
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
        ctx = BotContext(
            session=session,
            shop=shop,
            staff=owner_of(session=session, shop=shop),
            sender_key="test:owner",
            clock=scenario.clock,
            templates_dir=settings.templates_dir,
            settings=settings,
        )
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
