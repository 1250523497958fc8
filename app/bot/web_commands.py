"""登录网页版 / 退出网页版: a one-time link that signs this person into the web chat."""

from __future__ import annotations

from datetime import timedelta

from app.bot.context import BotContext
from app.bot.parse import Intent
from app.bot.registry import registry
from app.outreach.links import link_secret, signin_token
from app.shops.websessions import end_sessions


@registry.command(
    "web_signin",
    summary="在手机或电脑浏览器上用网页版(发一次性登录链接)",
    example="登录网页版",
    phrases=("登录网页版", "网页版登录", "网页版", "登录网页", "电脑版", "登录电脑版"),
)
def web_signin(ctx: BotContext, intent: Intent) -> list[str]:
    settings = ctx.service_settings()
    assert ctx.staff.id is not None
    minutes = settings.web_signin_minutes
    token = signin_token(
        link_secret(settings),
        shop_id=ctx.shop_id,
        staff_id=ctx.staff.id,
        now=ctx.clock.now(),
        ttl=timedelta(minutes=minutes),
    )
    url = f"{settings.public_url.rstrip('/')}/login/{token}"
    return [ctx.render("web_signin", url=url, minutes=minutes, person=ctx.staff.name)]


@registry.command(
    "web_signout",
    summary="退出所有登录着的网页版",
    example="退出网页版",
    phrases=("退出网页版", "网页版退出", "退出电脑版", "退出登录"),
)
def web_signout(ctx: BotContext, intent: Intent) -> list[str]:
    assert ctx.staff.id is not None
    ended = end_sessions(
        session=ctx.session, shop_id=ctx.shop_id, staff_id=ctx.staff.id, clock=ctx.clock
    )
    return [ctx.render("web_signout", ended=ended)]
