"""The push channels this deployment has, in the order a push should try them."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from app.channels.push import Pusher
from app.clock import Clock, SystemClock
from app.config import Settings


def pushers_from_settings(
    settings: Settings,
    engine: Engine,
    *,
    clock: Clock | None = None,
    http: httpx.Client | None = None,
    backoff_seconds: float = 0.2,
) -> list[Pusher]:
    """WeCom, then the Official Account, then SMS: only those configured to push."""
    from app.channels.sms import SmsPusher, sms_client
    from app.channels.wechat import OfficialAccountClient, OfficialAccountPusher
    from app.channels.wecom import WeComClient, WeComPusher

    clock = clock or SystemClock()
    http = http or httpx.Client(timeout=10.0)
    common = {"settings": settings, "engine": engine, "clock": clock, "http": http,
              "backoff_seconds": backoff_seconds}  # fmt: skip
    pushers: list[Pusher] = []
    if settings.wecom_corp_id and settings.wecom_secret and settings.wecom_agent_id:
        pushers.append(WeComPusher(client=WeComClient(**common), engine=engine))  # type: ignore[arg-type]
    if settings.wechat_app_id and settings.wechat_app_secret:
        pushers.append(
            OfficialAccountPusher(client=OfficialAccountClient(**common), engine=engine)  # type: ignore[arg-type]
        )
    if settings.sms_configured and settings.sms_digest_template_id:
        pushers.append(SmsPusher(sms=sms_client(**common), engine=engine))  # type: ignore[arg-type]
    return pushers
