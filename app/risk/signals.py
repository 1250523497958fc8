"""Warning signals: what fired for each customer, with the figures behind it.

Order signals come from the history itself; event signals from what the owner recorded
(replies, complaints, satisfaction, WeCom contact deletions, water tickets, bucket returns).
Signals are bits in one integer per customer, so a million customers cost 8 MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


class Level(IntEnum):
    YELLOW = 1
    RED = 2
    LOST = 3


@dataclass(frozen=True)
class SignalSpec:
    code: str
    bit: int
    level: Level
    label: str  # short Chinese name for reports and CSV readers


SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("interval_stretch", 0, Level.YELLOW, "超过平时间隔"),
    SignalSpec("interval_stretch_red", 1, Level.RED, "远超平时间隔"),
    SignalSpec("size_drop", 2, Level.YELLOW, "每次订得少了"),
    SignalSpec("frequency_drop", 3, Level.YELLOW, "订得稀了"),
    SignalSpec("ticket_drop", 4, Level.YELLOW, "客单价下降"),
    SignalSpec("ignored_2", 5, Level.YELLOW, "连续两次没回"),
    SignalSpec("ignored_4", 6, Level.RED, "连续四次没回"),
    SignalSpec("cold_reply", 7, Level.YELLOW, "回复冷淡"),
    SignalSpec("low_satisfaction", 8, Level.YELLOW, "满意度低"),
    SignalSpec("complaint_open", 9, Level.RED, "投诉未解决"),
    SignalSpec("contact_deleted", 10, Level.RED, "删了好友"),
    SignalSpec("tickets_running_out", 11, Level.YELLOW, "水票快用完"),
    SignalSpec("tickets_not_renewed", 12, Level.YELLOW, "水票用完没续"),
    SignalSpec("deposit_refunded", 13, Level.RED, "退桶退押金"),
    SignalSpec("moved_closed", 14, Level.LOST, "搬家/倒闭"),
    SignalSpec("recently_recalled", 15, Level.YELLOW, "刚挽回,重点关注"),
)
BY_CODE = {s.code: s for s in SIGNALS}
# Signals from the owner's records that alert at once (recently_recalled only tightens).
EVENT_SIGNAL_MASK = np.int64(
    sum(
        1 << s.bit
        for s in SIGNALS
        if s.code
        not in {
            "interval_stretch", "interval_stretch_red", "size_drop", "frequency_drop",
            "ticket_drop", "recently_recalled",
        }
    )
)  # fmt: skip

SIZE_DROP_RATIO = 0.6  # 2 buckets -> 1 is 0.5
FREQUENCY_DROP_RATIO = 1.8  # last gap at least 1.8x the earlier average
TICKET_DROP_RATIO = 0.6  # 1500 -> 800 is 0.53
LOW_SATISFACTION = 8.0


def bit(code: str) -> np.int64:
    return np.int64(1 << BY_CODE[code].bit)


def has(mask: I64, code: str) -> B:
    result: B = (mask & bit(code)) != 0
    return result


def codes(mask: int) -> list[str]:
    """The signal codes set in one customer's mask, in table order."""
    return [s.code for s in SIGNALS if mask & (1 << s.bit)]


def max_level(mask: I64) -> npt.NDArray[np.int8]:
    """Highest level among fired signals per customer (0 when none)."""
    level = np.zeros(mask.shape, dtype=np.int8)
    for spec in SIGNALS:
        level = np.where(has(mask, spec.code), np.maximum(level, int(spec.level)), level)
    return level


class EventFacts:
    """What the owner's records say about each customer (arrays, neutral by default)."""

    def __init__(
        self,
        n: int,
        *,
        ignored_streak: I64 | None = None,  # outreach in a row with no reply
        cold_reply: B | None = None,
        satisfaction: F64 | None = None,  # latest score 0-10, nan = none recorded
        complaint_open: B | None = None,
        contact_deleted: B | None = None,
        ticket_balance: F64 | None = None,  # water tickets left, nan = never had any
        had_tickets: B | None = None,
        deposit_refunded: B | None = None,
        moved_closed: B | None = None,
        recalled_day: I64 | None = None,  # epoch day of the last win-back, -1 = never
        paused_effective_days: F64 | None = None,  # owner-reported pause inside the open gap
    ) -> None:
        self.n = n

        def pick(value: Any, default: Any) -> Any:
            if value is None:
                return default
            if np.asarray(value).shape != (n,):
                raise ValueError(f"event facts must have length {n}")
            return np.asarray(value)

        self.ignored_streak: I64 = pick(ignored_streak, np.zeros(n, dtype=np.int64))
        self.cold_reply: B = pick(cold_reply, np.zeros(n, dtype=bool))
        self.satisfaction: F64 = pick(satisfaction, np.full(n, np.nan))
        self.complaint_open: B = pick(complaint_open, np.zeros(n, dtype=bool))
        self.contact_deleted: B = pick(contact_deleted, np.zeros(n, dtype=bool))
        self.ticket_balance: F64 = pick(ticket_balance, np.full(n, np.nan))
        self.had_tickets: B = pick(had_tickets, np.zeros(n, dtype=bool))
        self.deposit_refunded: B = pick(deposit_refunded, np.zeros(n, dtype=bool))
        self.moved_closed: B = pick(moved_closed, np.zeros(n, dtype=bool))
        self.recalled_day: I64 = pick(recalled_day, np.full(n, -1, dtype=np.int64))
        self.paused_effective_days: F64 = pick(paused_effective_days, np.zeros(n))


def order_signals(
    *,
    recent_quantity: F64,
    earlier_quantity: F64,
    last_gap_days: F64,
    earlier_gap_mean: F64,
    recent_amount: F64,
    earlier_amount: F64,
) -> I64:
    """Size, frequency and ticket drops from the order history alone."""
    with np.errstate(invalid="ignore", divide="ignore"):
        size_drop = recent_quantity <= SIZE_DROP_RATIO * earlier_quantity
        frequency_drop = last_gap_days >= FREQUENCY_DROP_RATIO * earlier_gap_mean
        ticket_drop = (recent_amount <= TICKET_DROP_RATIO * earlier_amount) & (earlier_amount > 0)
    mask = np.zeros(recent_quantity.shape, dtype=np.int64)
    mask |= np.where(size_drop, bit("size_drop"), 0)
    mask |= np.where(frequency_drop, bit("frequency_drop"), 0)
    # Water buckets cost the same each time: a smaller ticket IS a smaller order; count it once.
    mask |= np.where(ticket_drop & ~size_drop, bit("ticket_drop"), 0)
    return mask


def event_signals(facts: EventFacts, *, usual_quantity: F64, today: int, watch_days: int) -> I64:
    """Signals from the owner's records."""
    mask = np.zeros(facts.n, dtype=np.int64)

    def put(code: str, fired: B) -> None:
        nonlocal mask
        mask |= np.where(fired, bit(code), 0)

    put("ignored_4", facts.ignored_streak >= 4)
    put("ignored_2", (facts.ignored_streak >= 2) & (facts.ignored_streak < 4))
    put("cold_reply", facts.cold_reply)
    with np.errstate(invalid="ignore"):
        put("low_satisfaction", facts.satisfaction < LOW_SATISFACTION)
        put(
            "tickets_running_out",
            (facts.ticket_balance > 0) & (facts.ticket_balance <= np.maximum(usual_quantity, 1)),
        )
        put("tickets_not_renewed", facts.had_tickets & (facts.ticket_balance <= 0))
    put("complaint_open", facts.complaint_open)
    put("contact_deleted", facts.contact_deleted)
    put("deposit_refunded", facts.deposit_refunded)
    put("moved_closed", facts.moved_closed)
    put(
        "recently_recalled",
        (facts.recalled_day >= 0) & (today - facts.recalled_day <= watch_days),
    )
    return mask


def signal_logit(mask: I64, weights: dict[str, float]) -> F64:
    """Log-odds added to the dropout probability by the fired signals."""
    total = np.zeros(mask.shape)
    for code, weight in weights.items():
        total += np.where(has(mask, code), weight, 0.0)
    return total
