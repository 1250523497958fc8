"""Weeks of a shop's life, played through the real entry points, read as scripts.

A scenario moves the clock day by day and acts as the owner does: types in the web chat
(the JSON API the page posts to), gets the morning digest (the scheduler's own catch-up,
pushed to the local outbox the chat shows), taps a choice on a digest item's page, opens
the report, exports. Each step returns what the owner sees, checked in place:

    life.on("6/18", 9).says("王姐 2桶").shows("已记:王姐 2桶")
    life.on("6/19", 8).morning().shows("今天该跟进").lacks("0天没订")

`shows` and `lacks` fail with the day, the message and the whole text, so a failing step
reads like the script line it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, select
from sqlmodel import col

from app.bot.context import capture_side_output
from app.channels.local import deliver_as
from app.channels.models import OutboxMessage
from app.clock import FixedClock
from app.config import Settings
from app.dataio.exports import WORKBOOK_NAME, export_shop
from app.db import read_session
from app.digest.models import DigestDelivery
from app.digest.scheduled import DigestScheduler
from app.main import create_app
from app.shops.models import Shop, Staff
from app.shops.service import owner_of
from tests.factories import LOCAL

TZ = ZoneInfo("Asia/Shanghai")


class Seen(str):
    """What the owner saw at one step, with the step's name for failure messages."""

    step: str

    def __new__(cls, text: str, step: str) -> Seen:
        seen = super().__new__(cls, text)
        seen.step = step
        return seen

    def shows(self, *parts: str) -> Seen:
        for part in parts:
            assert part in self, f"{self.step}: expected to see {part!r} in:\n{self}"
        return self

    def lacks(self, *parts: str) -> Seen:
        for part in parts:
            assert part not in self, f"{self.step}: expected NOT to see {part!r} in:\n{self}"
        return self

    def matches(self, pattern: str) -> re.Match[str]:
        found = re.search(pattern, self)
        assert found, f"{self.step}: expected to match {pattern!r} in:\n{self}"
        return found


@dataclass
class ShopLife:
    """One shop, the clock, and the ways in an owner uses."""

    engine: Engine
    settings: Settings
    clock: FixedClock
    slug: str
    client: TestClient = field(init=False)
    scheduler: DigestScheduler = field(init=False)
    _sent: int = 0
    _now: str = "start"

    def __post_init__(self) -> None:
        app = create_app(settings=self.settings, engine=self.engine, clock=self.clock)
        self.client = TestClient(app, base_url=LOCAL, follow_redirects=False)
        # The scheduler's own catch-up sends the digests (not started: no threads).
        self.scheduler = DigestScheduler(
            engine=self.engine, settings=self.settings, clock=self.clock
        )

    # -- time ---------------------------------------------------------------------------

    def on(self, day: str | date, hour: int = 9, minute: int = 0) -> ShopLife:
        """Move the clock forward to `day` ("6/18" in the clock's year, or a date) at hh:mm."""
        if isinstance(day, str):
            month, dom = (int(x) for x in day.split("/"))
            day = date(self.today.year, month, dom)
        moment = datetime.combine(day, time(hour, minute), tzinfo=TZ)
        assert moment >= self.clock.now(), f"time runs forward only: {moment} < {self.clock.now()}"
        self.clock.current = moment
        self._now = f"{day:%m-%d} {hour:02d}:{minute:02d}"
        return self

    @property
    def today(self) -> date:
        return self.clock.now().astimezone(TZ).date()

    # -- the chat -----------------------------------------------------------------------

    def says(self, text: str) -> Seen:
        """Type `text` in the web chat; the replies, joined by blank lines."""
        self._sent += 1
        response = self.client.post(
            f"/api/chat/{self.slug}",
            json={"text": text, "client_msg_id": f"scenario-{self._sent:05d}"},
        )
        assert response.status_code == 200, f"[{self._now}] {text!r}: {response.text}"
        replies = [r["text"] for r in response.json()["replies"]]
        return Seen("\n\n".join(replies), f"[{self._now}] owner says {text!r}")

    def signs_in(self, staff_name: str) -> Person:
        """A staff member asks for 登录网页版 (from their WeChat) and opens the link in a
        browser of their own: the web chat then acts as them."""
        with read_session(self.engine) as session:
            shop = self._shop(session)
            staff = session.execute(
                select(Staff).where(col(Staff.shop_id) == shop.id, col(Staff.name) == staff_name)
            ).scalar_one()
            shop_id, staff_id = shop.id, staff.id
        assert shop_id is not None and staff_id is not None
        with capture_side_output(self.settings):
            reply = deliver_as(
                engine=self.engine, settings=self.settings, clock=self.clock, shop_id=shop_id,
                staff_id=staff_id, sender_key=f"wecom:{staff_name}", channel="wecom",
                text="登录网页版",
            )  # fmt: skip
        link = re.search(r"https?://[^/\s]+(/login/\S+)", "\n".join(reply.replies))
        assert link, reply.replies
        browser = TestClient(self.client.app, base_url=LOCAL, follow_redirects=False)
        signed = browser.post(link.group(1), headers={"Origin": LOCAL})
        assert signed.status_code == 303, signed.text
        return Person(life=self, name=staff_name, staff_id=staff_id, browser=browser)

    # -- the morning digest -------------------------------------------------------------

    def morning(self, staff_name: str | None = None) -> Seen:
        """At the shop's digest time, the scheduler's catch-up; the newest push to the owner
        (or to the staff member named)."""
        self.scheduler.catch_up()
        with read_session(self.engine) as session:
            shop = self._shop(session)
            person = owner_of(session=session, shop=shop)
            if staff_name is not None:
                person = session.execute(
                    select(Staff).where(
                        col(Staff.shop_id) == shop.id, col(Staff.name) == staff_name
                    )
                ).scalar_one()
            text = session.execute(
                select(OutboxMessage.text)
                .where(
                    col(OutboxMessage.shop_id) == shop.id,
                    col(OutboxMessage.staff_id) == person.id,
                )
                .order_by(col(OutboxMessage.id).desc())
                .limit(1)
            ).scalar()
        return Seen(text or "", f"[{self._now}] morning digest of {staff_name or 'the owner'}")

    def digest_items(self) -> list[dict[str, Any]]:
        """The items of the owner's latest digest (number, title, followup_id, url)."""
        with read_session(self.engine) as session:
            shop = self._shop(session)
            owner = owner_of(session=session, shop=shop)
            delivery = session.execute(
                select(DigestDelivery)
                .where(
                    col(DigestDelivery.shop_id) == shop.id,
                    col(DigestDelivery.staff_id) == owner.id,
                )
                .order_by(col(DigestDelivery.id).desc())
                .limit(1)
            ).scalar()
            assert delivery is not None, f"[{self._now}] no digest delivered yet"
            return list(delivery.items)

    def item_for(self, name: str) -> dict[str, Any]:
        items = [i for i in self.digest_items() if name in str(i.get("title", ""))]
        assert items, f"[{self._now}] {name} is not in the latest digest: {self.digest_items()}"
        return items[0]

    # -- tap pages ----------------------------------------------------------------------

    def opens(self, name: str) -> Seen:
        """Open the tap page of `name`'s item in the latest digest."""
        response = self.client.get(self._tap_path(name))
        assert response.status_code == 200, f"[{self._now}] tap page of {name}: {response.text}"
        return Seen(_text(response.text), f"[{self._now}] tap page of {name}")

    def taps(self, name: str, choice: str, cost: str = "") -> Seen:
        """Tap `choice` (e.g. "called", "lost:price") on `name`'s item page."""
        response = self.client.post(
            self._tap_path(name), data={"choice": choice, "cost": cost}, follow_redirects=True
        )
        assert response.status_code == 200, f"[{self._now}] tap {choice} on {name}: {response.text}"
        return Seen(_text(response.text), f"[{self._now}] tap {choice!r} on {name}")

    def _tap_path(self, name: str) -> str:
        return urlsplit(str(self.item_for(name)["url"])).path

    # -- helpers ------------------------------------------------------------------------

    def _shop(self, session: Any) -> Shop:
        shop = session.execute(select(Shop).where(col(Shop.slug) == self.slug)).scalar_one()
        assert isinstance(shop, Shop)
        return shop

    def exports(self, out_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
        """What `huitou export` writes for the shop today: the workbook's sheets as rows."""
        with read_session(self.engine) as session:
            export_shop(session=session, shop=self._shop(session), out_dir=out_dir,
                        today=self.today)  # fmt: skip
        workbook = load_workbook(out_dir / WORKBOOK_NAME)
        return {ws.title: list(ws.iter_rows(values_only=True)) for ws in workbook.worksheets}

    def upload(self, path: Path) -> Seen:
        """Upload a spreadsheet on the import page and confirm the preview."""
        with path.open("rb") as handle:
            preview = self.client.post(
                f"/import/{self.slug}", files={"file": (path.name, handle.read())}
            )
        assert preview.status_code == 200, f"[{self._now}] upload: {_text(preview.text)}"
        token = re.search(r'name="token" value="([^"]+)"', preview.text)
        assert token, f"[{self._now}] no confirmation on the preview:\n{_text(preview.text)}"
        done = self.client.post(f"/import/{self.slug}/confirm", data={"token": token.group(1)})
        assert done.status_code == 200, f"[{self._now}] confirm: {_text(done.text)}"
        return Seen(_text(done.text), f"[{self._now}] import of {path.name}")


@dataclass
class Person:
    """A staff member signed in to the web chat in their own browser."""

    life: ShopLife
    name: str
    staff_id: int
    browser: TestClient

    def says(self, text: str) -> Seen:
        self.life._sent += 1
        response = self.browser.post(
            f"/api/chat/{self.life.slug}",
            json={"text": text, "client_msg_id": f"scenario-{self.life._sent:05d}"},
            headers={"Origin": LOCAL},
        )
        step = f"[{self.life._now}] {self.name} says {text!r}"
        assert response.status_code == 200, f"{step}: {response.text}"
        return Seen("\n\n".join(r["text"] for r in response.json()["replies"]), step)


def _text(html: str) -> str:
    """A page's visible text, roughly: tags dropped, whitespace folded."""
    html = re.sub(r"(?s)<(script|style).*?</\1>", " ", html)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip())


def days(first: date, last: date, step: int = 1) -> Iterator[date]:
    """Every `step`-th day from first to last."""
    day = first
    while day <= last:
        yield day
        day = date.fromordinal(day.toordinal() + step)
