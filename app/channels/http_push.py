"""A generic HTTPS webhook push (HUITOU_PUSH_WEBHOOK_URL): JSON with an Idempotency-Key.

For operators who route digests into their own system; the receiver is expected to treat a
repeated Idempotency-Key as already done (409 or 2xx both count as delivered).
"""

from __future__ import annotations

from dataclasses import asdict

import httpx

from app.channels.push import PushError, PushMessage, PushReceipt, PushUnavailable


class WebhookPusher:
    name = "webhook"

    def __init__(self, *, url: str, timeout: float = 10.0, client: httpx.Client | None = None):
        self.url = url
        self.client = client or httpx.Client(timeout=timeout)

    def can_reach(self, *, shop_id: int, staff_id: int) -> bool:
        return bool(self.url)

    def push(self, message: PushMessage) -> PushReceipt:
        try:
            response = self.client.post(
                self.url, json=asdict(message), headers={"Idempotency-Key": message.key}
            )
        except httpx.HTTPError as exc:
            raise PushError(f"webhook unreachable: {exc.__class__.__name__}") from exc
        if response.status_code == 409:
            return PushReceipt(channel=self.name, accepted=True, duplicate=True)
        if 200 <= response.status_code < 300:
            return PushReceipt(channel=self.name, accepted=True)
        if response.status_code >= 500 or response.status_code == 429:
            raise PushError(f"webhook answered {response.status_code}")
        raise PushUnavailable(f"webhook refused: {response.status_code}")
