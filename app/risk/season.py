"""Shop seasonality as a time warp: summer speeds ordering up, the Spring Festival stops it.

Intervals are measured in "effective days": a day counts as its rate (1 = an ordinary day,
1.3 = a summer day when people drink more, 0.3 = a festival day when few order). A
customer who usually orders every 25 effective days is then not "late" just because the
Spring Festival fell in the gap, and is noticed sooner in summer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

EPOCH = date(1970, 1, 1)
SUMMER_MONTHS = frozenset({6, 7, 8})

# First day of the lunar year (正月初一). chinese_calendar only knows years it has official
# holiday notices for, so a fixed table keeps the simulator usable for any demo date.
_SPRING_FESTIVAL: dict[int, date] = {
    2015: date(2015, 2, 19),
    2016: date(2016, 2, 8),
    2017: date(2017, 1, 28),
    2018: date(2018, 2, 16),
    2019: date(2019, 2, 5),
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
}


def spring_festival(year: int) -> date:
    """Return 春节 (lunar new year's day) of ``year``."""
    # Outside the table, early February is a harmless approximation.
    return _SPRING_FESTIVAL.get(year, date(year, 2, 5))


def spring_festival_window(year: int) -> tuple[date, date]:
    """Return the inclusive span around 春节 when offices close and families travel."""
    day = spring_festival(year)
    return day - timedelta(days=5), day + timedelta(days=9)


def epoch_day(day: date) -> int:
    """Days since 1970-01-01, the integer day the engine computes in."""
    return (day - EPOCH).days


def from_epoch_day(day: int) -> date:
    return EPOCH + timedelta(days=int(day))


@dataclass(frozen=True)
class SeasonProfile:
    """Order-rate multipliers for summer and the Spring Festival window (1.0 = no effect)."""

    summer_rate: float = 1.0
    festival_rate: float = 1.0

    def __post_init__(self) -> None:
        if not (0.05 <= self.summer_rate <= 5 and 0.05 <= self.festival_rate <= 5):
            raise ValueError("season rates must lie in [0.05, 5]")

    @property
    def is_flat(self) -> bool:
        return self.summer_rate == 1.0 and self.festival_rate == 1.0

    def rates(self, first_day: int, last_day: int) -> npt.NDArray[np.float64]:
        """The rate of every epoch day in [first_day, last_day]."""
        n = last_day - first_day + 1
        rate = np.ones(n)
        if self.is_flat or n <= 0:
            return rate
        days = np.arange(first_day, last_day + 1).astype("datetime64[D]")
        months = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
        rate[np.isin(months, list(SUMMER_MONTHS))] = self.summer_rate
        first, last = from_epoch_day(first_day), from_epoch_day(last_day)
        for year in range(first.year - 1, last.year + 2):
            start, end = spring_festival_window(year)
            lo = max(epoch_day(start), first_day) - first_day
            hi = min(epoch_day(end), last_day) - first_day
            if lo <= hi:
                rate[lo : hi + 1] = self.festival_rate
        return rate


# Water stations when a shop has too little history to measure its own seasons.
WATER_DEFAULT = SeasonProfile(summer_rate=1.3, festival_rate=0.4)


class EffectiveClock:
    """Cumulative effective time over a span of days: E(d) = sum of rates of days before d."""

    def __init__(self, profile: SeasonProfile, first_day: int, last_day: int) -> None:
        self.first_day = first_day
        self.last_day = last_day
        rates = profile.rates(first_day, last_day)
        self._cumulative = np.concatenate(([0.0], np.cumsum(rates)))

    def at(self, day: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """E(day) for epoch days inside the span (clipped to it)."""
        index = np.atleast_1d(np.asarray(day, dtype=np.int64) - self.first_day)
        np.clip(index, 0, len(self._cumulative) - 1, out=index)
        result: npt.NDArray[np.float64] = self._cumulative[index]
        return result

    def elapsed(self, start: npt.ArrayLike, end: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Effective days from `start` to `end` (epoch days)."""
        return self.at(end) - self.at(start)

    def day_after(self, start: npt.ArrayLike, effective: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The first epoch day d with elapsed(start, d) > effective (clipped to the span end)."""
        target = self.at(start) + np.asarray(effective, dtype=np.float64) + THRESHOLD_MARGIN
        index = np.searchsorted(self._cumulative, target, side="right")
        result: npt.NDArray[np.int64] = (
            np.minimum(index, len(self._cumulative) - 1) + self.first_day
        )
        return result


# A threshold is passed when the elapsed effective days exceed it by more than this. Thresholds
# often land exactly on a whole day (1.5 x a 10-day rhythm), and cumulative day counts summed
# from different first days (a shop's clock, one customer's clock) differ in the last bits;
# without the margin the batch and the one-customer path could put the same threshold a day
# apart. 1e-7 day is under a hundredth of a second.
THRESHOLD_MARGIN = 1e-7


def estimate_profile(order_days: npt.NDArray[np.int64], fallback: SeasonProfile) -> SeasonProfile:
    """Measure a shop's summer and festival rates from its own order days.

    Compares the daily order count in each season with the count on ordinary days in the
    60 days either side, so growth of the shop does not read as seasonality. Needs at least
    one full summer and one festival with ordinary days around them; otherwise `fallback`.
    """
    if order_days.size < 200:
        return fallback
    first, last = int(order_days.min()), int(order_days.max())
    counts = np.bincount(order_days - first, minlength=last - first + 1).astype(np.float64)
    marker = SeasonProfile(summer_rate=2.0, festival_rate=0.5).rates(first, last)
    summer, festival, ordinary = marker == 2.0, marker == 0.5, marker == 1.0

    def ratio(season: npt.NDArray[np.bool_]) -> float | None:
        idx = np.flatnonzero(season)
        if idx.size < 10:
            return None
        lo, hi = max(idx.min() - 60, 0), min(idx.max() + 61, counts.size)
        around = ordinary.copy()
        around[:lo] = False
        around[hi:] = False
        if around.sum() < 30 or counts[around].mean() <= 0:
            return None
        return float(np.clip(counts[season].mean() / counts[around].mean(), 0.05, 5.0))

    summer_rate, festival_rate = ratio(summer), ratio(festival)
    return SeasonProfile(
        summer_rate=summer_rate if summer_rate is not None else fallback.summer_rate,
        festival_rate=festival_rate if festival_rate is not None else fallback.festival_rate,
    )
