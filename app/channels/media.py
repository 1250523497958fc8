"""Pictures (report charts) to WeCom and the Official Account, after the text reply.

A command such as 统计图 attaches a `ChatImage` (app/bot/context.py), which the inbox
returns with the replies (`Handled.images`). Once the reply's transaction has committed
and the text is on its way (the passive reply is sent, or the late reply pushed; see
app/channels/reply.py), each picture is drawn, uploaded as temporary media
(`/cgi-bin/media/upload?type=image`, multipart) and sent as an `image` message with the
returned media_id.
The text already carries the dashboard link, so a picture that cannot be drawn (no CJK
font: ChartError) or uploaded or sent is logged and skipped; nothing is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from app.bot.context import ChatImage
from app.channels.push import PushError
from app.channels.tokens import WeChatApi

log = logging.getLogger(__name__)

UPLOAD_PATH = "/cgi-bin/media/upload"
# Kept under 2 MB, the smallest image limit either provider has documented for temporary media.
IMAGE_MAX_BYTES = 2 * 1024 * 1024


def upload_image(api: WeChatApi, image: ChatImage) -> str:
    """Upload the picture as temporary media (kept 3 days by the provider); its media_id."""
    png = image.png
    if len(png) > IMAGE_MAX_BYTES:
        raise PushError(f"image {image.filename} is {len(png)} bytes, over the media limit")
    body = api.upload(
        UPLOAD_PATH,
        params={"type": "image"},
        filename=image.filename,
        content=png,
        mime="image/png",
    )
    media_id = body.get("media_id")
    if not media_id:
        raise PushError("media upload answered without a media_id")
    return str(media_id)


def send_images(
    send: Callable[[ChatImage], Any], images: Sequence[ChatImage], *, channel: str
) -> int:
    """Draw and send each picture with `send`; how many went out. Never raises."""
    from app.reports.charts import ChartError

    # A handler run twice for one message (a retried transaction) attached its picture
    # twice: one per file name, the last one.
    unique = list({image.filename: image for image in images}.values())
    sent = 0
    for image in unique:
        try:
            image.png  # noqa: B018  (drawn here, after the reply's transaction)
        except ChartError as exc:
            log.warning("%s: chart %s not drawn (%s); the text has the link", channel,
                        image.filename, exc)  # fmt: skip
            continue
        except Exception:
            log.exception("%s: drawing %s failed", channel, image.filename)
            continue
        try:
            send(image)
        except PushError as exc:
            log.warning("%s: picture %s not sent: %s", channel, image.filename, exc)
            continue
        except Exception:
            log.exception("%s: sending picture %s failed", channel, image.filename)
            continue
        sent += 1
    return sent
