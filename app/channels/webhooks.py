"""The provider callbacks (WeCom, Official Account, SMS replies) as one router.

Each endpoint answers 404 until its channel is configured: an empty token or key never
verifies anything.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter

from app.channels.sms import router as sms_router
from app.channels.wechat import router as wechat_router
from app.channels.wecom import router as wecom_router
from app.config import Settings

log = logging.getLogger("app.channels")

router = APIRouter()
router.include_router(wecom_router)
router.include_router(wechat_router)
router.include_router(sms_router)


def log_configured_channels(settings: Settings) -> None:
    """Say at start which real channels are on, or that only the local ones are."""
    channels = settings.configured_channels()
    if channels:
        log.info("channels configured: %s", ", ".join(channels))
    else:
        log.info("no channel configured: local web chat and console only")
