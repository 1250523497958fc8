"""The provider callbacks (WeCom, Official Account, SMS replies) as one router.

Each endpoint answers 404 until its channel is configured: an empty token or key never
verifies anything.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlmodel import select

from app.channels import wechat, wecom
from app.channels.inbox import Handled, Inbound, MessageIdTaken, handle
from app.channels.media import send_images
from app.channels.outbox import OutboxPusher
from app.channels.push import PushError, PushMessage
from app.channels.reply import in_flight
from app.channels.sms import router as sms_router
from app.channels.sms import sms_client
from app.channels.sms_queue import SmsQueueSender
from app.channels.spool import SpoolDrainer, spool_of
from app.channels.wechat import router as wechat_router
from app.channels.wecom import router as wecom_router
from app.config import Settings
from app.db import read_session
from app.shops.models import StaffIdentity

log = logging.getLogger("app.channels")

router = APIRouter()
router.include_router(wecom_router)
router.include_router(wechat_router)
router.include_router(sms_router)


def message_id_taken(_request: Request, exc: Exception) -> JSONResponse:
    """A provider message id already used by another sender: refused (409), nothing
    stored and nothing of the other sender's replies revealed, as any refused callback."""
    assert isinstance(exc, MessageIdTaken)
    return JSONResponse({"detail": "rejected"}, status_code=409)


def log_configured_channels(settings: Settings) -> None:
    """Say at start which real channels are on, or that only the local ones are."""
    channels = settings.configured_channels()
    if channels:
        log.info("channels configured: %s", ", ".join(channels))
    else:
        log.info("no channel configured: web chat and console only")


def spool_drainer(state: Any) -> SpoolDrainer | None:
    """The drainer of the app's callback spool, when a WeChat channel is configured.

    It reads the engine from the app's state each round, so it follows a swapped engine.
    """
    settings: Settings = state.settings
    if not (settings.wecom_configured or settings.wechat_configured):
        return None

    def replay(inbound: Inbound) -> Handled:
        return handle(engine=state.engine, settings=settings, clock=state.clock, inbound=inbound)

    def push(inbound: Inbound, handled: Handled) -> None:
        client: wecom.WeComClient | wechat.OfficialAccountClient
        if inbound.channel == wecom.CHANNEL:
            client = wecom.client_of(state)
        else:
            client = wechat.client_of(state)
        client.send_text(inbound.sender_id, "\n\n".join(handled.replies))
        # The pictures after the text, as a reply in time would have them.
        send_images(
            lambda image: client.send_image(inbound.sender_id, image),
            handled.images,
            channel=inbound.channel,
        )

    return SpoolDrainer(
        spool=spool_of(state),
        replay=replay,
        push=push,
        busy=in_flight,
        interval_seconds=settings.spool_drain_seconds,
    )


def sms_queue_sender(state: Any) -> SmsQueueSender | None:
    """The sender of owner-confirmed texts (app/channels/sms_queue.py), when SMS is set up.

    A refused or failed text is told to whoever confirmed it: WeCom, else the Official
    Account (within its 48-hour window), else the local outbox (web chat, console).
    """
    settings: Settings = state.settings
    if not settings.sms_configured:
        return None

    def notify(shop_id: int, staff_id: int, text: str, key: str) -> None:
        with read_session(state.engine) as session:
            identities = {
                i.channel: i.external_id
                for i in session.exec(
                    select(StaffIdentity).where(StaffIdentity.staff_id == staff_id)
                )
            }
        if wecom.CHANNEL in identities and settings.wecom_secret:
            try:
                wecom.client_of(state).send_text(identities[wecom.CHANNEL], text)
                return
            except PushError:
                log.warning("sms notice: WeCom push failed", exc_info=True)
        if wechat.CHANNEL in identities and settings.wechat_app_secret:
            try:
                wechat.client_of(state).send_text(identities[wechat.CHANNEL], text)
                return
            except PushError:
                log.warning("sms notice: Official Account push failed", exc_info=True)
        OutboxPusher(engine=state.engine, clock=state.clock).push(
            PushMessage(key=key, shop_id=shop_id, staff_id=staff_id, title="短信没发出", text=text)
        )

    return SmsQueueSender(
        sms=sms_client(settings=settings, engine=state.engine, clock=state.clock),
        engine=state.engine,
        clock=state.clock,
        notify=notify,
        interval_seconds=settings.sms_queue_seconds,
    )
