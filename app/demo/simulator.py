"""Seeded simulator of a bottled-water station's customers and orders (demo data, no I/O)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

from app.risk.season import SUMMER_MONTHS, spring_festival, spring_festival_window

HOUSEHOLD = "household"
OFFICE = "office"

ARCHETYPES: tuple[str, ...] = (
    "regular",
    "irregular",
    "drifting",
    "gone",
    "returned",
    "new",
    "showcase",
)

# Shares of the non-showcase customers; "new" takes whatever is left.
ARCHETYPE_SHARES: tuple[tuple[str, float], ...] = (
    ("regular", 0.55),
    ("irregular", 0.15),
    ("drifting", 0.10),
    ("gone", 0.10),
    ("returned", 0.04),
)

SHOWCASE_WANG = "王姐"
SHOWCASE_LI = "3号楼李会计"
SHOWCASE_ZHANG = "老张"
WANG_DAYS_SILENT = 38


@dataclass(frozen=True)
class DemoCustomer:
    """One simulated customer, with the ground truth of whether and when they left."""

    key: str
    name: str
    aliases: tuple[str, ...]
    phone: str | None
    address: str | None
    kind: str
    archetype: str
    churned_on: date | None


@dataclass(frozen=True)
class DemoOrder:
    """One simulated delivery order."""

    customer_key: str
    order_date: date
    hour: int
    quantity: int
    amount_cents: int


@dataclass(frozen=True)
class DemoData:
    """A whole simulated shop history as of one day."""

    customers: tuple[DemoCustomer, ...]
    orders: tuple[DemoOrder, ...]
    as_of: date


def in_spring_festival_window(day: date) -> bool:
    """Tell whether ``day`` falls in the office Spring Festival closure."""
    # The window always lies between mid-January and early March, so only day.year matters.
    first, last = spring_festival_window(day.year)
    return first <= day <= last


def office_open(day: date) -> bool:
    """Tell whether an office takes deliveries on ``day`` (weekdays outside 春节)."""
    return day.weekday() < 5 and not in_spring_festival_window(day)


def months_before(day: date, months: int) -> date:
    """Return the same day-of-month ``months`` calendar months earlier (clamped to month end)."""
    index = day.year * 12 + (day.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    next_first = date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_first - timedelta(days=1)).day
    return date(year, month, min(day.day, last_day))


# --- names, phones, addresses ------------------------------------------------------------

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚"
    "邵万钱严武戴莫孔向汤"
)
_FEMALE_GIVEN = (
    "丽",
    "芳",
    "娜",
    "敏",
    "静",
    "艳",
    "娟",
    "霞",
    "秀英",
    "桂英",
    "秀兰",
    "玉兰",
    "海燕",
    "晓燕",
    "红梅",
    "春花",
    "丽华",
    "淑珍",
    "美玲",
    "雪梅",
    "慧",
    "婷",
    "倩",
    "金凤",
    "月琴",
    "佳怡",
    "欣怡",
    "雅琴",
    "晓丽",
    "秋菊",
)
_MALE_GIVEN = (
    "伟",
    "强",
    "磊",
    "军",
    "勇",
    "杰",
    "涛",
    "明",
    "超",
    "刚",
    "平",
    "建国",
    "建华",
    "志强",
    "国平",
    "德明",
    "海涛",
    "建军",
    "立新",
    "文斌",
    "宏伟",
    "永刚",
    "振华",
    "国庆",
    "卫东",
    "浩",
    "鹏",
    "斌",
    "俊杰",
    "子豪",
)
_FEMALE_TITLES = ("姐", "姐", "大姐", "阿姨", "阿姨", "嫂", "老师", "会计")
_MALE_TITLES = ("哥", "哥", "叔", "师傅", "总", "老师", "会计")
_COMMUNITIES = (
    "幸福小区",
    "阳光花园",
    "锦绣家园",
    "翠湖苑",
    "金桂园",
    "和平里",
    "东湖小区",
    "绿洲小区",
    "滨江苑",
    "书香门第",
)
_ROADS = ("建设路", "人民路", "解放路", "中山路", "和平街", "文化路", "新华街", "长江路")
_OFFICE_PARKS = ("科技园", "创业大厦", "工业园", "商务中心")
_OFFICE_DEPTS = ("财务室", "办公室", "前台", "人事部", "技术部", "会议室")
_COMMUNITY_ORGS = (("物业", "东门"), ("居委会", "1栋一楼"), ("门卫室", "南门"))
_BRANDS = ("蓝天", "春苗", "小太阳", "育英", "启航", "明德", "新星", "彩虹")
_INSTITUTIONS = ("幼儿园", "培训学校", "托管班", "琴行", "画室", "舞蹈室")
_SHOPS = ("餐馆", "面馆", "五金店", "超市", "理发店", "烟酒店", "水果店", "汽修店", "快递点")
# Real mobile prefixes (China Mobile / Unicom / Telecom), so numbers look right to an owner.
_PHONE_PREFIXES = (
    *(f"13{d}" for d in range(10)),
    *("150", "151", "152", "153", "155", "156", "157", "158", "159"),
    *(f"18{d}" for d in range(10)),
    *("191", "193", "195", "198", "199"),
)


@dataclass(frozen=True)
class _Identity:
    name: str
    aliases: tuple[str, ...]
    address: str | None


class _Registry:
    """Hands out names, aliases and phone numbers, never the same one twice."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._phones: set[str] = set()

    def taken(self, name: str) -> bool:
        return name in self._names

    def claim(self, name: str) -> None:
        self._names.add(name)

    def free_aliases(self, *candidates: str) -> tuple[str, ...]:
        # Aliases share the namespace with names so the owner's words never point to two people.
        chosen = tuple(c for c in dict.fromkeys(candidates) if c and not self.taken(c))
        for alias in chosen:
            self.claim(alias)
        return chosen

    def phone(self, rng: random.Random) -> str:
        while True:
            number = rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}"
            if number not in self._phones:
                self._phones.add(number)
                return number


def _given(rng: random.Random, female: bool) -> str:
    return rng.choice(_FEMALE_GIVEN if female else _MALE_GIVEN)


def _home_address(rng: random.Random, community: str, building: int) -> str:
    return f"{community}{building}栋{rng.randint(1, 18)}{rng.randint(1, 4):02d}"


def _household_identity(rng: random.Random, reg: _Registry) -> _Identity:
    while True:
        surname = rng.choice(_SURNAMES)
        female = rng.random() < 0.6
        community = rng.choice(_COMMUNITIES)
        building = rng.randint(1, 18)
        address: str | None = _home_address(rng, community, building)
        style = rng.random()
        full = surname + _given(rng, female)
        alias_candidates: tuple[str, ...] = ()
        if style < 0.42:
            title = rng.choice(_FEMALE_TITLES if female else _MALE_TITLES)
            name = surname + title
            if rng.random() < 0.4:
                alias_candidates = (full,)
        elif style < 0.55:
            prefix = "老" if (not female and rng.random() < 0.8) or rng.random() < 0.3 else "小"
            name = prefix + surname
            if rng.random() < 0.35:
                alias_candidates = (full,)
        elif style < 0.82:
            name = full
            if rng.random() < 0.3:
                alias_candidates = (surname + ("姐" if female else "哥"),)
        elif style < 0.95:
            # Owners often tell same-surname neighbours apart by building.
            title = rng.choice(_FEMALE_TITLES if female else _MALE_TITLES)
            name = f"{building}栋{surname}{title}"
            if rng.random() < 0.5:
                alias_candidates = (surname + title,)
        else:
            # Some customers are only ever known by their flat number.
            assert address is not None
            name = address.removeprefix(community)
            if rng.random() < 0.6:
                alias_candidates = (address,)
        if reg.taken(name):
            continue
        reg.claim(name)
        if style < 0.95 and rng.random() < 0.1:
            address = None  # the owner never wrote it down (known by flat: always kept)
        return _Identity(name, reg.free_aliases(*alias_candidates), address)


def _office_identity(rng: random.Random, reg: _Registry) -> _Identity:
    while True:
        style = rng.random()
        number = rng.randint(1, 40)
        alias_candidates: tuple[str, ...] = ()
        if style < 0.3:
            building = rng.randint(1, 12)
            name = f"{building}号楼{rng.choice(_OFFICE_DEPTS)}"
            address = f"{rng.choice(_OFFICE_PARKS)}{building}号楼{rng.randint(1, 9)}层"
        elif style < 0.5:
            place = rng.choice(_COMMUNITIES)
            org, spot = rng.choice(_COMMUNITY_ORGS)
            name = place + org
            address = place + spot
            if place.endswith("小区") and rng.random() < 0.5:
                alias_candidates = (place.removesuffix("小区") + org,)
        elif style < 0.7:
            name = rng.choice(_BRANDS) + rng.choice(_INSTITUTIONS)
            address = f"{rng.choice(_ROADS)}{number}号"
        else:
            road = rng.choice(_ROADS)
            surname = rng.choice(_SURNAMES)
            shop = rng.choice(_SHOPS)
            name = f"{road}{surname}记{shop}"
            address = f"{road}{number}号"
            if rng.random() < 0.4:
                alias_candidates = (f"{surname}记{shop}", f"{surname}老板")
        if reg.taken(name):
            continue
        reg.claim(name)
        office_address: str | None = None if rng.random() < 0.05 else address
        return _Identity(name, reg.free_aliases(*alias_candidates), office_address)


# --- ordering behaviour ------------------------------------------------------------------


@dataclass
class _Behaviour:
    """How one customer orders; mutable only while the customer is being built."""

    kind: str
    mean_interval: float
    jitter: float  # relative spread of one interval
    skewed: bool  # irregular customers: log-normal intervals with the odd very long gap
    summer_factor: float
    base_qty: int
    qty_variation: float  # chance one order differs from base_qty
    unit_cents: int
    hour_pref: int
    trip_prob: float  # chance an interval includes a 1-3 week trip
    home_trips: dict[int, tuple[date, date]]  # per year: away for 春节 (households)
    drift_start: date | None = None
    drift_end: date | None = None
    stretch: float = 1.0
    gap_after: date | None = None
    gap_days: int = 0


def _behaviour(
    rng: random.Random, kind: str, *, skewed: bool, start: date, as_of: date
) -> _Behaviour:
    home_trips: dict[int, tuple[date, date]] = {}
    if kind == HOUSEHOLD:
        # Roughly half the households go back to their hometown for the festival each year.
        for year in range(start.year, as_of.year + 1):
            if rng.random() < 0.45:
                festival = spring_festival(year)
                home_trips[year] = (
                    festival - timedelta(days=rng.randint(3, 8)),
                    festival + timedelta(days=rng.randint(6, 14)),
                )
        return _Behaviour(
            kind=kind,
            mean_interval=rng.triangular(7.0, 30.0, 18.0),
            jitter=rng.uniform(0.35, 0.55) if skewed else rng.uniform(0.05, 0.1),
            skewed=skewed,
            summer_factor=rng.uniform(0.65, 0.75),
            base_qty=rng.choices((1, 2, 3), weights=(0.35, 0.45, 0.2))[0],
            qty_variation=0.35 if skewed else 0.08,
            unit_cents=rng.choices((1800, 2000), weights=(0.85, 0.15))[0],
            hour_pref=rng.choice((8, 9, 10, 11, 12, 17, 18, 18, 19, 19, 20)),
            trip_prob=0.03,
            home_trips=home_trips,
        )
    return _Behaviour(
        kind=kind,
        mean_interval=rng.uniform(6.0, 8.5),
        jitter=rng.uniform(0.3, 0.45) if skewed else rng.uniform(0.06, 0.12),
        skewed=skewed,
        summer_factor=rng.uniform(0.72, 0.82),
        base_qty=rng.randint(3, 10),
        qty_variation=0.4 if skewed else 0.15,
        unit_cents=rng.choices((1600, 1500), weights=(0.75, 0.25))[0],
        hour_pref=rng.choice((8, 9, 9, 10, 10, 11, 14, 15)),
        trip_prob=0.0,
        home_trips=home_trips,
    )


def _settle(rng: random.Random, b: _Behaviour, day: date) -> date:
    """Move a planned order day forward to a day the customer can actually order."""
    if b.kind == OFFICE:
        while not office_open(day):
            day += timedelta(days=1)
        return day
    trip = b.home_trips.get(day.year)
    if trip is not None and trip[0] <= day <= trip[1]:
        day = trip[1] + timedelta(days=rng.randint(1, 3))
    return day


def _settle_back(day: date) -> date:
    """Move an office order day backward to the nearest open day."""
    while not office_open(day):
        day -= timedelta(days=1)
    return day


def _drift_progress(b: _Behaviour, day: date) -> float:
    if b.drift_start is None or b.drift_end is None or day < b.drift_start:
        return 0.0
    span = max(1, (b.drift_end - b.drift_start).days)
    return min(1.0, (day - b.drift_start).days / span)


def _season_factor(b: _Behaviour, day: date) -> float:
    if day.month in SUMMER_MONTHS:
        return b.summer_factor
    if b.kind == HOUSEHOLD and day.year not in b.home_trips:
        # Staying home over the festival: family visits, fewer ordinary days, slower use.
        festival = spring_festival(day.year)
        if abs((day - festival).days) <= 10:
            return 1.25
    return 1.0


def _interval(rng: random.Random, b: _Behaviour, day: date, progress: float) -> int:
    # Square root: the stretch shows early, since the walk never records the interval that
    # would cross drift_end (that is where the customer stops).
    drift = 1.0 + math.sqrt(progress) * (b.stretch - 1.0)
    mean = b.mean_interval * _season_factor(b, day) * drift
    if b.skewed:
        # Mean-preserving log-normal: mostly near the mean, occasionally much longer.
        raw = mean * rng.lognormvariate(-(b.jitter**2) / 2.0, b.jitter)
    else:
        raw = rng.gauss(mean, mean * b.jitter)
    step = max(3 if b.kind == HOUSEHOLD else 4, round(raw))
    if rng.random() < b.trip_prob:
        step += rng.randint(7, 21)
    return step


def _quantity(rng: random.Random, b: _Behaviour, progress: float) -> int:
    qty = float(b.base_qty)
    if rng.random() < b.qty_variation:
        qty += rng.choice((-1, 1)) * (1 if b.kind == HOUSEHOLD else rng.randint(1, 2))
    qty *= 1.0 - 0.5 * progress  # drifting customers buy less before they stop
    low, high = (1, 3) if b.kind == HOUSEHOLD else (3, 10)
    return min(high, max(low, math.floor(qty + 0.5)))


def _walk(
    rng: random.Random, b: _Behaviour, first: date, last_allowed: date
) -> list[tuple[date, int]]:
    """Generate (day, quantity) orders forward from ``first`` up to ``last_allowed``."""
    orders: list[tuple[date, int]] = []
    day = _settle(rng, b, first)
    gap_pending = b.gap_after is not None
    while day <= last_allowed:
        progress = _drift_progress(b, day)
        orders.append((day, _quantity(rng, b, progress)))
        if gap_pending and b.gap_after is not None and day >= b.gap_after:
            step = b.gap_days
            gap_pending = False
        else:
            step = _interval(rng, b, day, progress)
        day = _settle(rng, b, day + timedelta(days=step))
    return orders


def _hour(rng: random.Random, preferred: int) -> int:
    hour = preferred if rng.random() < 0.6 else preferred + rng.choice((-2, -1, 1, 2))
    return min(20, max(7, hour))


def _to_orders(
    rng: random.Random, key: str, b: _Behaviour, dated: list[tuple[date, int]]
) -> list[DemoOrder]:
    return [
        DemoOrder(
            customer_key=key,
            order_date=day,
            hour=_hour(rng, b.hour_pref),
            quantity=qty,
            amount_cents=qty * b.unit_cents,
        )
        for day, qty in dated
    ]


# --- customers ---------------------------------------------------------------------------


def _days(n: float) -> timedelta:
    return timedelta(days=round(n))


def _first_day(rng: random.Random, b: _Behaviour, start: date, latest_join: date) -> date:
    """Either an existing customer (random phase in the first interval) or a later joiner."""
    if latest_join <= start or rng.random() < 0.6:
        return start + timedelta(days=rng.randint(0, round(b.mean_interval)))
    return start + timedelta(days=rng.randint(0, (latest_join - start).days))


def _generic_customer(
    rng: random.Random,
    reg: _Registry,
    key: str,
    archetype: str,
    start: date,
    as_of: date,
) -> tuple[DemoCustomer, list[DemoOrder]]:
    kind = OFFICE if rng.random() < 0.12 else HOUSEHOLD
    ident = _office_identity(rng, reg) if kind == OFFICE else _household_identity(rng, reg)
    phone = reg.phone(rng) if rng.random() < (0.92 if kind == OFFICE else 0.85) else None
    skewed = archetype == "irregular" or (
        archetype in ("drifting", "gone", "returned") and rng.random() < 0.3
    )
    b = _behaviour(rng, kind, skewed=skewed, start=start, as_of=as_of)
    horizon = (as_of - start).days
    churned = archetype in ("drifting", "gone")

    if archetype == "new":
        dated = _new_customer_orders(rng, b, as_of)
    elif archetype == "gone":
        # Stopped abruptly, somewhere between two months and a year ago.
        stop = as_of - timedelta(days=rng.randint(60, max(60, min(365, horizon - 90))))
        latest_join = stop - _days(5 * b.mean_interval)
        dated = _walk(rng, b, _first_day(rng, b, start, latest_join), stop)
    elif archetype == "drifting":
        # Bases big enough that halving the order is visible.
        b.base_qty = max(2, b.base_qty) if b.kind == HOUSEHOLD else max(6, b.base_qty)
        end = as_of - timedelta(days=rng.randint(15, max(15, min(150, horizon // 3))))
        drift_len = max(rng.randint(60, 120), round(3.5 * b.mean_interval))
        b.drift_end = end
        b.drift_start = end - timedelta(days=drift_len)
        b.stretch = rng.uniform(2.2, 3.0)
        latest_join = b.drift_start - timedelta(days=120)
        dated = _walk(rng, b, _first_day(rng, b, start, latest_join), end)
    elif archetype == "returned":
        b.gap_days = rng.randint(65, 110)  # 2-4 months, even if a 春节 trip home extends it
        latest_gap = max(90, horizon - b.gap_days - 90)
        b.gap_after = start + timedelta(days=rng.randint(min(90, latest_gap), latest_gap))
        dated = _walk(rng, b, _first_day(rng, b, start, start), as_of)
    else:
        latest_join = as_of - timedelta(days=120)
        dated = _walk(rng, b, _first_day(rng, b, start, latest_join), as_of)

    if not dated:
        # Only with tiny horizons: keep every customer visible with at least one order.
        day = as_of - timedelta(days=rng.randint(1, max(1, min(20, horizon))))
        day = _settle_back(day) if kind == OFFICE else day
        dated = [(max(day, start), b.base_qty)]
    customer = DemoCustomer(
        key=key,
        name=ident.name,
        aliases=ident.aliases,
        phone=phone,
        address=ident.address,
        kind=kind,
        archetype=archetype,
        churned_on=dated[-1][0] if churned else None,
    )
    return customer, _to_orders(rng, key, b, dated)


def _new_customer_orders(rng: random.Random, b: _Behaviour, as_of: date) -> list[tuple[date, int]]:
    """One or two orders within the last month."""
    days_ago = rng.randint(1, 30)
    first = as_of - timedelta(days=days_ago)
    if b.kind == OFFICE:
        first = _settle_back(first)
    dated = [(first, _quantity(rng, b, 0.0))]
    remaining = (as_of - first).days
    if remaining >= 8 and rng.random() < 0.5:
        second = first + timedelta(days=rng.randint(5, remaining - 1))
        if b.kind == OFFICE:
            second = _settle_back(second)
        if second > first:
            dated.append((second, _quantity(rng, b, 0.0)))
    return dated


def _showcase_wang(
    rng: random.Random, reg: _Registry, key: str, start: date, as_of: date
) -> tuple[DemoCustomer, list[DemoOrder]]:
    """王姐: 2 buckets every ~25 days for over a year, silent for exactly 38 days now."""
    b = _behaviour(rng, HOUSEHOLD, skewed=False, start=start, as_of=as_of)
    b.unit_cents, b.hour_pref = 1800, 18
    dated: list[tuple[date, int]] = []
    day = as_of - timedelta(days=WANG_DAYS_SILENT)
    # Jitter comes in +j/-j pairs, so her average stays 25 days, as the owner would say.
    jitters: list[int] = []
    while day >= start:
        dated.append((day, 2))
        if not jitters:
            j = rng.randint(0, 2)
            jitters = [j, -j]
        day -= timedelta(days=25 + jitters.pop())
    dated.reverse()
    customer = DemoCustomer(
        key=key,
        name=SHOWCASE_WANG,
        aliases=("王丽",),
        phone=reg.phone(rng),
        address="幸福小区3栋502",
        kind=HOUSEHOLD,
        archetype="showcase",
        churned_on=None,  # quiet, not lost: the demo's customer to win back
    )
    return customer, _to_orders(rng, key, b, dated)


def _showcase_li(
    rng: random.Random, reg: _Registry, key: str, start: date, as_of: date
) -> tuple[DemoCustomer, list[DemoOrder]]:
    """3号楼李会计: an office taking 5 buckets about weekly, last order in the past week."""
    b = _behaviour(rng, OFFICE, skewed=False, start=start, as_of=as_of)
    b.unit_cents, b.hour_pref = 1600, 9
    recent = [
        as_of - timedelta(days=n) for n in range(1, 7) if office_open(as_of - timedelta(days=n))
    ]
    # Right after 春节 no open day may exist in the last week; take the latest one before.
    day = rng.choice(recent) if recent else _settle_back(as_of - timedelta(days=1))
    dated: list[tuple[date, int]] = []
    while day >= start:
        dated.append((day, 5))
        day = _settle_back(day - timedelta(days=rng.randint(6, 8)))
    dated.reverse()
    customer = DemoCustomer(
        key=key,
        name=SHOWCASE_LI,
        aliases=("李会计",),
        phone=reg.phone(rng),
        address="科技园3号楼2层",
        kind=OFFICE,
        archetype="showcase",
        churned_on=None,
    )
    return customer, _to_orders(rng, key, b, dated)


def _showcase_zhang(
    rng: random.Random, reg: _Registry, key: str, start: date, as_of: date
) -> tuple[DemoCustomer, list[DemoOrder]]:
    """老张: irregular household, always 3 buckets, ordered 3-10 days ago."""
    b = _behaviour(rng, HOUSEHOLD, skewed=True, start=start, as_of=as_of)
    b.unit_cents, b.hour_pref = 1800, 10
    dated: list[tuple[date, int]] = []
    day = as_of - timedelta(days=rng.randint(3, 10))
    while day >= start:
        dated.append((day, 3))
        season = 0.7 if day.month in SUMMER_MONTHS else 1.0
        gap = max(3, round(12.0 * season * rng.lognormvariate(-0.125, 0.5)))
        day -= timedelta(days=gap)
    dated.reverse()
    customer = DemoCustomer(
        key=key,
        name=SHOWCASE_ZHANG,
        aliases=("张建国",),
        phone=reg.phone(rng),
        address="阳光花园7栋301",
        kind=HOUSEHOLD,
        archetype="showcase",
        churned_on=None,
    )
    return customer, _to_orders(rng, key, b, dated)


_SHOWCASES = (
    (SHOWCASE_WANG, ("王丽",), _showcase_wang),
    (SHOWCASE_LI, ("李会计",), _showcase_li),
    (SHOWCASE_ZHANG, ("张建国",), _showcase_zhang),
)


def _archetype_plan(count: int) -> list[str]:
    plan: list[str] = []
    for archetype, share in ARCHETYPE_SHARES:
        plan += [archetype] * min(count - len(plan), round(share * count))
    plan += ["new"] * (count - len(plan))
    return plan


def simulate_water_station(
    *, as_of: date, seed: int = 7, n_customers: int = 300, months: int = 18
) -> DemoData:
    """Simulate a water station's customers and their orders over ``months`` up to ``as_of``."""
    if n_customers < len(_SHOWCASES):
        raise ValueError(f"n_customers must be at least {len(_SHOWCASES)}")
    if months < 2:
        # 王姐's last order lies 38 days back; a shorter history could not hold it.
        raise ValueError("months must be at least 2")
    rng = random.Random(seed)
    start = months_before(as_of, months)
    reg = _Registry()
    for name, aliases, _ in _SHOWCASES:
        reg.claim(name)
        for alias in aliases:
            reg.claim(alias)

    # Showcases are slots -1..-3 so keys mix them in with everyone else.
    slots: list[int | str] = [-1, -2, -3]
    slots += _archetype_plan(n_customers - len(_SHOWCASES))
    rng.shuffle(slots)
    width = max(3, len(str(n_customers)))

    customers: list[DemoCustomer] = []
    orders: list[DemoOrder] = []
    for index, slot in enumerate(slots, start=1):
        key = f"c{index:0{width}d}"
        if isinstance(slot, int):
            build = _SHOWCASES[-slot - 1][2]
            customer, own = build(rng, reg, key, start, as_of)
        else:
            customer, own = _generic_customer(rng, reg, key, slot, start, as_of)
        customers.append(customer)
        orders += own
    orders.sort(key=lambda o: (o.order_date, o.hour, o.customer_key))
    return DemoData(customers=tuple(customers), orders=tuple(orders), as_of=as_of)
