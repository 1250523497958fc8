"""Injected time: code asks a Clock, tests pass a fixed one, nothing reads today directly."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    """Source of the current instant (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that only moves when told to (tests, demos)."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 2, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current = self.current + timedelta(**kwargs)

    @classmethod
    def at_local(cls, day: date, hour: int = 10, tz: str = "Asia/Shanghai") -> FixedClock:
        """A clock frozen at `hour` o'clock local time on `day`."""
        local = datetime.combine(day, time(hour), tzinfo=ZoneInfo(tz))
        return cls(local.astimezone(UTC))


def from_utc(moment: datetime) -> datetime:
    """An aware datetime; raw SQLite reads give naive UTC, which this makes explicit."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def month_end(day: date) -> date:
    """The last day of `day`'s month."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def local_today(clock: Clock, tz: str) -> date:
    """Today's date in the shop's timezone."""
    return clock.now().astimezone(ZoneInfo(tz)).date()


@dataclass
class ShiftedClock:
    """The wall clock moved by whole days so that "today" starts as `day` (demos, screenshots)."""

    day: date
    tz: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        self._offset = timedelta(days=(self.day - local_today(SystemClock(), self.tz)).days)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


def clock_for(today: date | None, tz: str) -> Clock:
    """The process clock: the system clock, or one shifted to a configured day."""
    return ShiftedClock(today, tz) if today else SystemClock()
