"""Dates and durations as owners write them: 昨天, 周三, 12号, 3月5日, 到月底, 两周, 上周.

Pure functions of the text and "today". Two readings of a bare day:
- looking back (an order): 周三 is the most recent Wednesday, today included; 12号 is the
  12th of this month unless that is still ahead, then last month's.
- looking ahead (a pause): 周三 is the next Wednesday, today included; 12号 is this month's
  12th unless it has passed, then next month's.
Words such as 明天 / 下周 / 上周 say the direction themselves and win.
A few words name no single day (上周, 前几天): they are read as a sensible day and marked
approximate, so the reply can say which day was recorded.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta

import cn2an

from app.clock import month_end

_CN_DIGITS = "零一二两俩三四五六七八九十"
_NUM = rf"(?:\d{{1,3}}|[{_CN_DIGITS}]{{1,3}})"

_RELATIVE_DAYS = {
    "大前天": -3,
    "前天": -2,
    "昨天": -1,
    "昨日": -1,
    "昨儿": -1,
    "今天": 0,
    "今日": 0,
    "今儿": 0,
    "明天": 1,
    "明日": 1,
    "明儿": 1,
    "后天": 2,
    "大后天": 3,
}
# Days back that name no single day: the usual reading, said back to the owner.
_LOOSE_DAYS = {"前几天": -3, "前两天": -2}
# 上周 without a weekday: a week back.
_WEEKS_BACK = {"上": 1, "上个": 1, "上上": 2, "上上个": 2}
# 周末 is read as its Saturday.
_WEEKDAYS = {
    "一": 0,
    "二": 1,
    "三": 2,
    "四": 3,
    "五": 4,
    "六": 5,
    "日": 6,
    "天": 6,
    "七": 6,
    "末": 5,
}
_WEEKDAYS.update({str(i + 1): i for i in range(7)})

# A day word in running text. "3号楼" / "12号院" are addresses, not dates.
DATE_WORD = re.compile(
    "(?P<loose>" + "|".join(_LOOSE_DAYS) + ")"
    "|(?P<rel>" + "|".join(sorted(_RELATIVE_DAYS, key=len, reverse=True)) + ")"
    r"|(?P<wkprefix>上上个|上上|上个|上|下个|下|这个|这|本)?(?:周|星期|礼拜)"
    r"(?P<wd>[一二三四五六日天末1-7])"
    r"|(?P<weeksback>上上个|上上|上个|上)(?:周|星期|礼拜)"
    r"|(?:(?P<month>\d{1,2})月(?P<mday>\d{1,2})(?:日|号)?)"
    r"|(?:(?<!\d)(?P<day>\d{1,2})(?:日|号)(?![楼栋院门室单区座层幢期\d])"
    # "3号李会计" is a name; "12号送" / "12号下午" / "3号拿了" are days.
    r"(?!(?![上下中早晚送要来的那左前后拿订买取又再])[\u4e00-\u9fff]))"
)
# A time of day carries nothing we store beyond the raw text; read it so it is not mistaken
# for an amount ("下午3点" is not 3元).
TIME_WORD = re.compile(
    r"(?:上午|下午|早上|早晨|晚上|中午|傍晚|今早|今晚|明早|明晚)"
    rf"(?:{_NUM}点(?:半|{_NUM}分?)?)?"
    rf"|{_NUM}点(?:半|{_NUM}分|钟)?(?:前|后|左右)?"
)


@dataclass(frozen=True)
class DayWord:
    """A date read from text, and whether the text itself pointed to the future."""

    on: date
    future: bool  # 明天 / 下周三: the text says "ahead", whatever direction was asked
    approximate: bool = False  # 上周, 前几天: no single day was named; `on` is our reading


def _shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def _safe_date(year: int, month: int, day: int) -> date | None:
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return date(year, month, day)


def _weekday(match: re.Match[str], today: date, *, ahead: bool) -> DayWord:
    weekday = _WEEKDAYS[match.group("wd")]
    prefix = match.group("wkprefix") or ""
    monday = today - timedelta(days=today.weekday())
    if prefix in ("下", "下个"):
        return DayWord(monday + timedelta(days=7 + weekday), future=True)
    if prefix in ("上", "上个"):
        return DayWord(monday + timedelta(days=weekday - 7), future=False)
    if prefix in ("上上", "上上个"):
        return DayWord(monday + timedelta(days=weekday - 14), future=False)
    if prefix in ("这", "这个", "本"):
        this_week = monday + timedelta(days=weekday)
        return DayWord(this_week, future=this_week > today)
    back = (today.weekday() - weekday) % 7
    if ahead:
        return DayWord(today + timedelta(days=(weekday - today.weekday()) % 7), future=False)
    return DayWord(today - timedelta(days=back), future=False)


def read_day(match: re.Match[str], today: date, *, ahead: bool) -> DayWord | None:
    """Turn a DATE_WORD match into a date; None when it names no real day (2月30号)."""
    if match.group("loose"):
        back = _LOOSE_DAYS[match.group("loose")]
        return DayWord(today + timedelta(days=back), future=False, approximate=True)
    if match.group("weeksback"):
        weeks = _WEEKS_BACK[match.group("weeksback")]
        return DayWord(today - timedelta(days=7 * weeks), future=False, approximate=True)
    if match.group("rel"):
        offset = _RELATIVE_DAYS[match.group("rel")]
        return DayWord(today + timedelta(days=offset), future=offset > 0)
    if match.group("wd"):
        read = _weekday(match, today, ahead=ahead)
        # 周末 is two days; the Saturday is our reading, and the reply says so.
        return replace(read, approximate=True) if match.group("wd") == "末" else read
    if match.group("month"):
        month, day = int(match.group("month")), int(match.group("mday"))
        on: date | None = _safe_date(today.year, month, day)
        if on is None:
            return None
        if ahead and on < today:
            on = _safe_date(today.year + 1, month, day)
        elif not ahead and on > today:
            on = _safe_date(today.year - 1, month, day)
        return DayWord(on, future=False) if on else None
    day = int(match.group("day"))
    on_day: date | None = _safe_date(today.year, today.month, day)
    if ahead and (on_day is None or on_day < today):
        year, month = _shift_month(today.year, today.month, 1)
        on_day = _safe_date(year, month, day)
    elif not ahead and (on_day is None or on_day > today):
        year, month = _shift_month(today.year, today.month, -1)
        on_day = _safe_date(year, month, day)
    return DayWord(on_day, future=False) if on_day else None


_DURATION = re.compile(rf"(?P<n>{_NUM}|半)个?(?P<unit>天|日|周|星期|礼拜|月)")
_UNTIL_WORDS = {
    "月底": "month_end",
    "这个月底": "month_end",
    "本月底": "month_end",
    "月末": "month_end",
    "下个月": "month_end",  # "停到下个月" = resume on the 1st, so no alerts this month
    "下月": "month_end",
    "下月初": "month_end",
    "年底": "year_end",
    "年末": "year_end",
    "过完年": "after_new_year",
    "年后": "after_new_year",
}


def _count(token: str) -> float | None:
    if token == "半":
        return 0.5
    if token.isdigit():
        return float(token)
    try:
        return float(cn2an.cn2an(token.replace("俩", "两"), "smart"))
    except (ValueError, KeyError):
        return None


def read_until(text: str, today: date) -> date | None:
    """The last day of a pause: '到月底', '两周', '到3月5号', '一个月' -> a date (inclusive)."""
    text = text.strip(" :·.-")
    text = re.sub(r"^(?:到|至|直到|一直到)", "", text).strip()
    for word in sorted(_UNTIL_WORDS, key=len, reverse=True):
        if text.startswith(word):
            kind = _UNTIL_WORDS[word]
            if kind == "month_end":
                return month_end(today)
            if kind == "year_end":
                return date(today.year, 12, 31)
            # Spring Festival moves; the end of February is a safe, explainable bound.
            year = today.year if today.month <= 2 else today.year + 1
            return month_end(date(year, 2, 1))
    match = DATE_WORD.search(text)
    if match and match.start() == 0:
        day = read_day(match, today, ahead=True)
        if day is not None and day.on >= today:
            return day.on
        return None
    match = _DURATION.match(text)
    if match:
        count = _count(match.group("n"))
        if count is None or count <= 0:
            return None
        unit = match.group("unit")
        days = {"天": 1, "日": 1, "周": 7, "星期": 7, "礼拜": 7, "月": 30}[unit] * count
        if not 1 <= days <= 366:
            return None
        return today + timedelta(days=round(days))
    return None
