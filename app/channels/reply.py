"""A text's replies within WeChat's deadline; slower ones later, outages spooled.

WeChat and WeCom wait 5 seconds for a passive reply and then retry. `answer_in_time` runs
the message's handling (`inbox.handle`) on the channel threads, not the event loop, and
waits up to the reply budget:

- done in time: the replies are the passive answer; pictures follow in a background task
  once it has gone out;
- a database error (DATABASE_UNAVAILABLE): the message is spooled (app/channels/spool.py)
  and answered empty, so WeChat stops re-sending; the drainer replays it later;
- out of budget, which is ours and no database error: answered empty, the message is
  spooled in case this process dies, and the work goes on; when it finishes its replies
  and pictures are pushed through the provider's API (unless a redelivery was answered
  with them meanwhile) and the message leaves the spool.

A redelivery while the first delivery is still running waits on the same work instead of
starting it again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from fastapi import BackgroundTasks

from app.bot.context import ChatImage
from app.channels.inbox import Handled, Inbound
from app.channels.media import send_images
from app.channels.spool import DATABASE_UNAVAILABLE, Spool, spool_of

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def bot_pool(threads: int) -> ThreadPoolExecutor:
    """The threads messages are handled on, so a slow reply can outlive its request."""
    return ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="huitou-channel")


@dataclass
class _Flight:
    """One message being handled in this process, shared by its concurrent deliveries."""

    future: Future[Handled | None] = field(default_factory=Future)
    answered: bool = False  # some delivery got the replies passively: no late push
    # The work ending and the budget running out race; whichever comes second settles
    # the spool under this lock, so a message that was answered is never left in it.
    settle: threading.Lock = field(default_factory=threading.Lock)
    ended: bool = False
    spooled: bool = False


_IN_FLIGHT: dict[str, _Flight] = {}
_IN_FLIGHT_LOCK = threading.Lock()


def flight_key(inbound: Inbound) -> str:
    return f"{inbound.channel}:{inbound.message_key}"


def in_flight(inbound: Inbound) -> bool:
    """Whether this message is being handled in this process now (the drainer waits)."""
    with _IN_FLIGHT_LOCK:
        return flight_key(inbound) in _IN_FLIGHT


async def answer_in_time(
    *,
    state: Any,
    background: BackgroundTasks,
    inbound: Inbound,
    work: Callable[[], Handled],
    send_text: Callable[[str], Any],
    send_image: Callable[[ChatImage], Any],
) -> list[str]:
    """The replies to give passively; [] when they come later or the message was spooled.

    `work` handles the message (inbox.handle for it); `send_text`/`send_image` reach the
    sender through the channel's API.
    """
    settings = state.settings
    spool = spool_of(state)
    key = flight_key(inbound)
    with _IN_FLIGHT_LOCK:
        flight = _IN_FLIGHT.get(key)
        first = flight is None
        if flight is None:
            flight = _IN_FLIGHT[key] = _Flight()
            bot_pool(settings.channel_threads).submit(_run, flight, work, spool, inbound)
    current = flight

    def finish(done: Future[Handled | None]) -> None:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT.pop(key, None)
            answered = current.answered
        if done.exception() is not None:
            log.error("channel message %s failed", key, exc_info=done.exception())
            return
        handled = done.result()
        if not answered and handled is not None and handled.replies:
            try:
                send_text("\n\n".join(handled.replies))
            except Exception:
                log.exception("sending a late reply failed")
                return
            send_images(send_image, handled.images, channel=inbound.channel)

    # asyncio.wait neither cancels the work nor raises: only a work still running means the
    # budget ran out; a TimeoutError the work raised itself is the work's failure, not ours.
    budget = settings.wechat_reply_budget_seconds
    waiter = asyncio.wrap_future(current.future)
    done, _running = await asyncio.wait({waiter}, timeout=budget)
    if not done:
        await asyncio.to_thread(_spool_unless_ended, current, spool, inbound, budget)
        if first:
            current.future.add_done_callback(finish)
        return []
    with _IN_FLIGHT_LOCK:
        current.answered = True
        if first and _IN_FLIGHT.get(key) is current:
            _IN_FLIGHT.pop(key, None)  # ended, even by failing: a redelivery runs it afresh
    handled = waiter.result()
    if handled is None:  # spooled: the database was unavailable
        return []
    if handled.images:
        background.add_task(send_images, send_image, handled.images, channel=inbound.channel)
    return handled.replies


def _run(flight: _Flight, work: Callable[[], Handled], spool: Spool, inbound: Inbound) -> None:
    """Handle the message (on a channel thread); a database error spools it."""
    if not flight.future.set_running_or_notify_cancel():
        return
    try:
        handled = work()
    except DATABASE_UNAVAILABLE:
        with flight.settle:
            flight.ended = True
            spool.keep(inbound, reason="database unavailable")
        flight.future.set_result(None)
        return
    except BaseException as exc:
        flight.future.set_exception(exc)
        return
    with flight.settle:
        flight.ended = True
        if flight.spooled:
            spool.discard(inbound.channel, inbound.message_key)
    flight.future.set_result(handled)


def _spool_unless_ended(flight: _Flight, spool: Spool, inbound: Inbound, budget: float) -> None:
    with flight.settle:
        if not flight.ended:
            spool.keep(inbound, reason=f"no reply within the {budget:g} s budget")
            flight.spooled = True
