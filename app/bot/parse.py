"""Reading what the owner typed. All Chinese parsing lives in app/bot/ (this module, when.py).

`parse` turns a message into an Intent: a command word, one or more orders, a customer
followed by what happened to them (回复了, 流失 价格, 暂停 两周, 投诉 …), a customer name to
look up, an answer to a question the bot asked, or "not understood". It is pure: it never
touches the database, and names are resolved to customers later, by the handlers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property
from typing import Any

import cn2an

from app.bot.when import DATE_WORD, TIME_WORD, DayWord, read_day, read_until
from app.outreach.tiers import loss_reason_code

MAX_MESSAGE_CHARS = 500
MAX_NAME_CHARS = 20
DEFAULT_UNITS = ("桶", "箱", "瓶", "次", "单", "件", "个")
# Units each industry counts in, most usual first; the generic ones are accepted as well.
INDUSTRY_UNITS: dict[str, tuple[str, ...]] = {
    "water": ("桶", "箱", "瓶", "张", "个"),
    "car": ("次", "单"),
    "retail": ("单", "件", "个"),
}
# Pinyin input slips owners make all day: 筒/捅 for 桶.
UNIT_TYPOS = {"筒": "桶", "捅": "桶"}
CANCEL_WORDS = frozenset({"取消", "算了", "不用了", "不要了", "0", "不是", "都不是"})

# Outreach reactions (三级唤醒 reads the reaction to decide the next tier).
REACTION_WORDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "回复了",
            "回了",
            "回消息了",
            "有回复",
            "回信了",
            "回话了",
            "接电话了",
            "接了电话",
            "聊了",
            "很热情",
            "挺热情",
        ),
        "warm",
    ),
    **dict.fromkeys(
        (
            "没回",
            "没回复",
            "没有回复",
            "没回消息",
            "不回",
            "未回复",
            "没理",
            "没接",
            "没接电话",
            "不接电话",
            "打不通",
            "联系不上",
            "已读不回",
        ),
        "none",
    ),
    **dict.fromkeys(
        (
            "冷淡",
            "很冷淡",
            "挺冷淡",
            "态度冷淡",
            "敷衍",
            "再说吧",
            "说再说",
            "暂时不需要",
            "不需要",
        ),
        "cold",
    ),
}
RECOVERED_WORDS = ("已挽回", "挽回了", "挽回", "回来了", "召回了", "召回", "回头了", "救回来了")
# Saying *why* is often how owners say someone is gone: "王姐 换了一家".
LOST_WORDS = (
    "流失",
    "已流失",
    "流失了",
    "不订了",
    "不再订了",
    "丢了",
    "换了一家",
    "换别家了",
    "搬走了",
    "搬家了",
    "倒闭了",
    "关门了",
)
PAUSE_WORDS = ("暂停", "先停", "停送", "出远门", "出门了", "回老家", "不在家", "外出")
COMPLAINT_WORDS = ("投诉", "抱怨", "不满意", "有意见")
RESOLVED_WORDS = ("投诉已解决", "投诉解决了", "已解决", "解决了", "问题解决了", "处理好了")
SATISFACTION_WORDS = ("满意度", "满意", "评分", "打分", "评价")
TICKETS_BUY_WORDS = ("买水票", "办水票", "充水票", "买了水票", "办了水票", "水票充值")
TICKETS_USE_WORDS = ("用水票", "用票", "水票抵", "用了水票", "扣水票", "水票")
DEPOSIT_WORDS = ("押桶", "交押金", "押金", "压桶")
DEPOSIT_RETURN_WORDS = ("退桶", "还桶", "退押金", "退回", "退了桶")
# The owner's own call on a customer. D sets them aside: never chased, on no list.
SET_ASIDE_WORDS = (
    "不用追了",
    "不用追",
    "别追了",
    "不追了",
    "不用提醒了",
    "不用提醒",
    "别提醒了",
    "不要提醒了",
    "不再提醒",
    "不用跟进了",
    "D类",
    "D级",
)
VALUE_CLASS_WORDS = {"A类": "A", "A级": "A", "B类": "B", "B级": "B", "C类": "C", "C级": "C"}
RESTORE_WORDS = ("恢复提醒", "重新提醒", "继续提醒", "恢复跟进", "恢复")
# What "设置 提醒倍数 1.8" may name: the owner's words for the shop's reminder thresholds
# (the keys of app.risk.config.RiskConfig).
SETTING_WORDS = {
    "提醒倍数": "quiet_ratio",
    "跟进倍数": "quiet_ratio",
    "黄色倍数": "quiet_ratio",
    "高风险倍数": "at_risk_ratio",
    "红色倍数": "at_risk_ratio",
    "流失倍数": "lost_ratio",
    "流失天数": "lost_min_days",
}

# Loss reasons per industry: the label the owner sees, then the words that mean it.
# The last entry is the catch-all. (搬家/倒闭 is the "passive" loss nobody could prevent.)
UNAVOIDABLE_REASONS = frozenset({"搬家/倒闭"})
REASONS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "water": (
        ("价格", ("价格", "价钱", "嫌贵", "太贵", "贵", "涨价", "便宜")),
        (
            "服务不及时",
            (
                "服务不及时",
                "送水慢",
                "送得慢",
                "太慢",
                "慢",
                "不及时",
                "不准时",
                "服务差",
                "服务不好",
                "态度差",
                "服务",
            ),
        ),
        ("水质", ("水质", "水不好", "有味", "异味", "不干净", "水有问题", "口感", "难喝", "质量")),
        (
            "竞争对手",
            (
                "竞争对手",
                "对手",
                "别家",
                "换了一家",
                "换家",
                "换别家",
                "其他家",
                "别的店",
                "另一家",
            ),
        ),
        ("搬家/倒闭", ("搬家", "搬走", "搬了", "倒闭", "关门", "不开了", "回老家")),
        ("其他", ("其他", "其它", "别的")),
    ),
    "car": (
        ("忘了", ("忘了", "忘记", "没想起")),
        ("价格", ("价格", "价钱", "嫌贵", "太贵", "贵", "便宜")),
        ("服务不好", ("服务不好", "服务差", "态度差", "修不好", "返修", "服务", "慢")),
        ("距离远", ("距离远", "太远", "远", "距离", "搬家", "搬走")),
        ("竞争对手", ("竞争对手", "别家", "换了一家", "4s店", "其他家")),
        ("其他", ("其他", "其它", "别的")),
    ),
    "retail": (
        ("价格", ("价格", "价钱", "嫌贵", "太贵", "贵", "便宜")),
        ("服务不及时", ("服务不及时", "太慢", "慢", "不及时", "服务差", "态度差", "服务")),
        ("商品质量", ("质量", "不新鲜", "坏了", "过期", "假货")),
        ("竞争对手", ("竞争对手", "别家", "换了一家", "其他家", "网上买", "超市")),
        ("搬家/倒闭", ("搬家", "搬走", "倒闭", "关门", "回老家")),
        ("其他", ("其他", "其它", "别的")),
    ),
}

# Trailing punctuation and decoration owners add (????, ~, 。, !) that carry no meaning.
_TRAILING_NOISE = re.compile(r"[\s?!。.,,~…、;:·]+$")
_LEADING_NOISE = re.compile(r"^[\s,.。、;:·~]+")
_SEPARATORS = r"\s,，、;；。!！?？~～…/|·"
_SEP_RUN = re.compile(rf"[{_SEPARATORS}]+")
_CN_DIGIT = "零一二两俩三四五六七八九十百"
# A well-formed Chinese count (三, 十二, 二十, 一百零五); "三两" is a name plus 两, not 32.
_CN_COUNT = re.compile(
    r"^(?:[一二两三四五六七八九]|[一二两三四五六七八九]?十[一二三四五六七八九]?"
    r"|[一二两三四五六七八九]百(?:零[一二三四五六七八九]|[一二三四五六七八九]十[一二三四五六七八九]?)?)$"
)
_AMOUNT = re.compile(r"^(?:¥|￥)?\s*(\d+(?:\.\d{1,2})?)\s*(?:元|块钱|块|快)?$")
# An amount inside a message: marked by ¥/元/块, or a bare number standing alone.
_AMOUNT_IN_TEXT = re.compile(
    r"(?:一共|总共|共|合计|收了|收|付了|付|给了)?\s*"
    r"(?:(?:¥|￥)\s*(?P<a>\d+(?:\.\d{1,2})?)\s*(?:元|块钱|块)?"
    r"|(?P<b>\d+(?:\.\d{1,2})?)\s*(?:元|块钱|块|快)"
    r"|(?P<c>\d+(?:\.\d{1,2})?)(?=$|[" + _SEPARATORS + r"]))"
)
_PHONE = re.compile(r"1[3-9]\d{9}")
# Words around an order that add nothing to it ("送两桶水哈", "谢谢", "麻烦尽快").
_TAIL_FILLER = re.compile(
    r"(?:桶装水|装水|矿泉水|纯净水|谢谢了|谢谢|多谢|辛苦了|辛苦|麻烦了|麻烦|拜托了|拜托|尽快|马上|快点"
    r"|送过来|送来|送到|送上|过来|上门|好的|水|的|哈|啊|呀|吧|了|哦|噢|喔|嗯|呢|吗|嘛|桶"
    r"|送|来|要|急)"
)
_PAY_WORDS = re.compile(r"(?:已付款|已付|没付|未付|欠着|记账|赊账|月结|现金|微信|支付宝|到付)")
# The verb between a name (and its day) and the quantity: "老王上周拿了两桶".
_HEAD_TRAILING = re.compile(
    r"(?:再|又|还|也|帮|说)?"
    r"(?:拿走了|拿了|买了|取了|订了|要了|送了|来了|要送|送|要|订|买|来|拿|取)$"
)
_HEAD_LEADING = re.compile(r"^(?:帮我给|给我|帮忙给|帮|给|替|送)")
# Joining words before a second name ("…2桶 和老李1桶"); never stripped from the first name,
# which may really start with 和 (和平里5栋).
_HEAD_JOINING = re.compile(r"^(?:还有|另外|以及|和|跟)")
# An amount written before the quantity ("王姐 押金 100元 2个"): only with 元/块/¥, after a space.
_HEAD_AMOUNT = re.compile(r"(?:^|\s)(?:¥|￥)?(\d+(?:\.\d{1,2})?)(?:元|块钱|块)?\s*$")
# Who a forwarded message is from is already known: "老板 我家要3桶" names nobody new.
_PRONOUNS = re.compile(
    r"^(?:老板娘|老板|师傅|你好|您好|在吗|hi|hello)*(?:我们家|我家|我们|俺家|咱家|我|俺|咱)?$"
)
# A forwarded customer message: "王姐:明天送两桶水哈" or "[王姐] 明天要2桶".
_FORWARDED = re.compile(
    r"^(?:[\[【(]\s*(?P<n1>[^\]】)]{1,20}?)\s*[\]】)]\s*:?|(?P<n2>[^:\s\[【]{1,20}?)\s*(?:说)?\s*:)"
    r"\s*(?P<body>.+)$",
    re.S,
)


@dataclass(frozen=True)
class OrderItem:
    """One quantity for one customer as read from the message (an order, tickets, buckets)."""

    customer: str
    quantity: int
    unit: str
    amount_cents: int | None = None
    order_on: date | None = None  # an explicit past day (昨天, 周三); None = today
    delivery_on: date | None = None  # 明天送: bought today, delivered that day
    note: str | None = None  # words kept with the order that we do not interpret
    vague_day: str | None = None  # "上周": no single day was named; order_on is our reading


@dataclass(frozen=True)
class Intent:
    """What the message asks for; `kind` is a command name from the registry or a built-in."""

    kind: str
    text: str
    args: str = ""
    customer: str = ""  # who a per-customer command is about, as the owner wrote it
    items: tuple[OrderItem, ...] = ()
    number: int | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """Everything understood, without empty parts (what the corpus tests compare)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.customer:
            out["customer"] = self.customer
        if self.number is not None:
            out["number"] = self.number
        if self.items:
            out["items"] = [
                {k: v for k, v in vars(item).items() if v is not None} for item in self.items
            ]
        out.update({k: v for k, v in self.fields.items() if v not in (None, "")})
        return out


@dataclass(frozen=True)
class Vocabulary:
    """The word tables one shop's messages are read with (built from the registry)."""

    phrases: Mapping[str, str]
    prefixes: Mapping[str, str]  # longest first
    verbs: Mapping[str, tuple[str, str]]  # word -> (command name, argument reader)
    units: tuple[str, ...] = DEFAULT_UNITS
    industry: str = "water"

    @cached_property
    def verb_pattern(self) -> re.Pattern[str] | None:
        # Longest first, so at one position "投诉已解决" wins over "投诉".
        words = sorted(self.verbs, key=len, reverse=True)
        # The registry keeps words lower-cased; "王姐 A类" is typed in capitals.
        pattern = "|".join(re.escape(w) for w in words)
        return re.compile(pattern, re.IGNORECASE) if words else None

    @cached_property
    def quantity_pattern(self) -> re.Pattern[str]:
        units = sorted({*self.units, *UNIT_TYPOS}, key=len, reverse=True)
        return re.compile(
            rf"(?<![\d.])(?P<qty>\d{{1,5}}|[{_CN_DIGIT}]{{1,4}})\s*"
            rf"(?P<unit>{'|'.join(re.escape(u) for u in units)})"
        )

    @cached_property
    def half_pattern(self) -> re.Pattern[str]:
        """一桶半 / 2桶半, 1.5桶, 半桶: a quantity that is not a whole number."""
        longest_first = sorted({*self.units, *UNIT_TYPOS}, key=len, reverse=True)
        units = "|".join(re.escape(u) for u in longest_first)
        return re.compile(
            rf"(?<![\d.])(?P<qty>\d{{1,5}}|[{_CN_DIGIT}]{{1,4}})\s*(?P<unit>{units})半"
            rf"(?![个天月年小钟价折])"
            rf"|(?<![\d.])(?P<dec>\d{{1,5}}\.\d*[1-9])\s*(?P<dec_unit>{units})"
            rf"|(?<![\d{_CN_DIGIT}])半\s*(?P<half_unit>{units})(?![个天月年小钟])"
        )

    @cached_property
    def reasons(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return REASONS.get(self.industry, REASONS["water"])


def _clean_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if category in ("So", "Sk", "Co", "Cs"):
        return " "  # emoji and pictographs separate words, they never belong to one
    if category[0] == "C" and ch not in "\n\t":
        return ""
    return ch


def normalize(text: str) -> str:
    """Full-width to half-width (NFKC), emoji and control characters out, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(_clean_char(ch) for ch in text)
    text = re.sub(r"\s+", " ", text).strip()
    text = _TRAILING_NOISE.sub("", text)
    return _LEADING_NOISE.sub("", text)


def chinese_quantity(token: str) -> int | None:
    """'2' -> 2, '两' -> 2, '俩' -> 2, '十二' -> 12; None when it is not a count."""
    if token.isdigit():
        value = int(token)
        return value if value > 0 else None
    token = token.replace("俩", "两")
    if not _CN_COUNT.match(token):
        return None
    try:
        number = cn2an.cn2an(token, "smart")
    except (ValueError, KeyError):
        return None
    return int(number) if float(number).is_integer() and number > 0 else None


def parse_amount_cents(token: str) -> int | None:
    """'36', '36元', '¥36.5', '45块' -> cents; None when it is not an amount."""
    match = _AMOUNT.match(token.strip())
    if not match:
        return None
    return round(float(match.group(1)) * 100)


def _parse_new_customer(args: str) -> dict[str, str | None]:
    """'王姐 13800001234 幸福小区3栋' -> name, phone, address (phone and address optional)."""
    phone_match = _PHONE.search(args)
    phone = phone_match.group(0) if phone_match else None
    rest = _PHONE.sub(" ", args) if phone else args
    parts = rest.replace(",", " ").replace("，", " ").split()
    name = parts[0] if parts else ""
    address = " ".join(parts[1:]) or None
    return {"name": name, "phone": phone, "address": address}


def _looks_like_name(text: str) -> bool:
    # A name is short and holds at least one CJK character or letter; "？？" or "123" is not.
    if not 1 <= len(text) <= MAX_NAME_CHARS or " " in text:
        return False
    return any(unicodedata.category(ch).startswith("L") for ch in text)


# --- orders ---------------------------------------------------------------------------------


@dataclass
class _Extras:
    """What surrounds a quantity: amount, day words, untouched words."""

    amount_cents: int | None = None
    days: list[re.Match[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _consume(token: str, extras: _Extras, *, fillers: bool) -> int:
    """Read amounts, days, times (and filler words) from the start of token; chars used."""
    pos = 0
    while pos < len(token):
        amount = _AMOUNT_IN_TEXT.match(token, pos)
        if amount and amount.end() > pos and extras.amount_cents is None:
            value = amount.group("a") or amount.group("b") or amount.group("c")
            extras.amount_cents = round(float(value) * 100)
            pos = amount.end()
            continue
        day = DATE_WORD.match(token, pos)
        if day:
            extras.days.append(day)
            pos = day.end()
            continue
        moment = TIME_WORD.match(token, pos)
        if moment:
            pos = moment.end()
            continue
        if not fillers:
            break
        pay = _PAY_WORDS.match(token, pos)
        if pay:
            extras.notes.append(pay.group(0))
            pos = pay.end()
            continue
        filler = _TAIL_FILLER.match(token, pos)
        if filler:
            pos = filler.end()
            continue
        break
    return pos


def _read_tail(tail: str, extras: _Extras, *, last: bool) -> str:
    """Take what belongs to the current order from `tail`; return the rest (the next name)."""
    tokens = [t for t in _SEP_RUN.split(tail) if t]
    rest: list[str] = []
    for index, token in enumerate(tokens):
        scratch = _Extras(amount_cents=extras.amount_cents)
        used = _consume(token, scratch, fillers=True)
        if used == len(token) or last:
            extras.amount_cents = scratch.amount_cents
            extras.days.extend(scratch.days)
            extras.notes.extend(scratch.notes)
            if used < len(token):
                extras.notes.append(token[used:])
            continue
        if index == len(tokens) - 1:
            # "36元老李": the amount is ours, the rest names the next customer.
            used = _consume(token, extras, fillers=False)
            rest.append(token[used:])
        else:
            rest.append(token)
        rest.extend(tokens[index + 1 :])
        break
    return " ".join(rest)


def _read_head(head: str, extras: _Extras, *, first: bool) -> str:
    """The customer's name from the words before a quantity, with day words and '送' removed."""
    text = head if first else _HEAD_JOINING.sub("", head.strip())
    while True:
        before = text
        text = text.strip(_SEPARATORS.replace("\\s", " ") + "\n\t:")
        day = DATE_WORD.match(text)
        if day:
            extras.days.append(day)
            text = text[day.end() :]
            continue
        moment = TIME_WORD.match(text)
        if moment and moment.end() > 0:
            text = text[moment.end() :]
            continue
        text = _HEAD_LEADING.sub("", text)
        text = _HEAD_TRAILING.sub("", text)
        amount = _HEAD_AMOUNT.search(text)
        marked = amount and re.search(r"[元块¥￥]", amount.group(0))
        if amount and marked and extras.amount_cents is None and amount.start() > 0:
            extras.amount_cents = round(float(amount.group(1)) * 100)
            text = text[: amount.start()]
        for found in DATE_WORD.finditer(text):
            if found.end() == len(text):
                extras.days.append(found)
                text = text[: found.start()]
                break
        for found in TIME_WORD.finditer(text):
            if found.end() == len(text) and found.start() > 0:
                text = text[: found.start()]
                break
        if text == before:
            break
    return re.sub(r"\s+", "", text)


def _quantity_at(match: re.Match[str]) -> tuple[int, int] | None:
    """(quantity, chars of the match that belong to the name): '张三两桶' -> (2, 1)."""
    token = match.group("qty")
    for skip in range(len(token)):
        quantity = chinese_quantity(token[skip:])
        if quantity is not None:
            return quantity, skip
        if token[skip].isdigit():
            return None
    return None


def _dated(
    item: OrderItem, extras: _Extras, today: date, default: tuple[DayWord, str] | None
) -> OrderItem:
    read = default
    for day_match in extras.days:
        day = read_day(day_match, today, ahead=False)
        if day is not None:
            read = (day, day_match.group(0))
            break
    note = " ".join(extras.notes) or None
    dated = replace(item, amount_cents=extras.amount_cents, note=note)
    if read is None or read[0].on == today:
        return dated
    day, said = read
    # 上周 names no single day: the reply says which day we took it for.
    dated = replace(dated, vague_day=said if day.approximate else None)
    if day.future or day.on > today:
        # Ordered today for a later day: the purchase is today's (that is when the customer
        # decided to buy, and what their rhythm is measured by); the day is the delivery's.
        return replace(dated, delivery_on=day.on)
    return replace(dated, order_on=day.on)


def scan_items(text: str, vocab: Vocabulary, today: date, *, customer: str = "") -> list[OrderItem]:
    """Every 'name quantity unit [amount] [day]' in text; [] when there is none.

    A later item without a name belongs to the previous one's customer; `customer` names the
    first when the text itself does not (a forwarded message, '王姐 用水票 2桶').
    """
    matches = list(vocab.quantity_pattern.finditer(text))
    if not matches:
        return []
    items: list[OrderItem] = []
    head = text[: matches[0].start()]
    message_day: tuple[DayWord, str] | None = None
    previous = customer
    for index, match in enumerate(matches):
        read = _quantity_at(match)
        if read is None:
            return []
        quantity, skip = read
        head = head + match.group("qty")[:skip]
        extras = _Extras()
        name = _read_head(head, extras, first=index == 0)
        if _PRONOUNS.match(name):
            name = ""
        if index == 0 and extras.days and name:
            # "昨天 王姐2桶 老李1桶": a day before the first name dates the whole message.
            first = read_day(extras.days[0], today, ahead=False)
            message_day = (first, extras.days[0].group(0)) if first else None
        name = name or previous
        if not name:
            return []
        last = index == len(matches) - 1
        tail_end = len(text) if last else matches[index + 1].start()
        head = _read_tail(text[match.end() : tail_end], extras, last=last)
        unit = UNIT_TYPOS.get(match.group("unit"), match.group("unit"))
        item = OrderItem(customer=name, quantity=quantity, unit=unit)
        items.append(_dated(item, extras, today, message_day))
        previous = name
    if any(len(i.customer) > MAX_NAME_CHARS for i in items):
        return []
    if not any(unicodedata.category(ch).startswith("L") for i in items for ch in i.customer):
        return []
    return items


# --- per-customer commands ------------------------------------------------------------------


def _read_reason(text: str, verb: str, vocab: Vocabulary) -> dict[str, Any]:
    said = text.strip(" ·:-,") or ""
    source = said or verb
    best: tuple[int, int, str] | None = None
    for label, words in vocab.reasons:
        for word in words:
            at = source.find(word)
            if at >= 0 and (best is None or (at, -len(word)) < (best[0], best[1])):
                best = (at, -len(word), label)
    reason = best[2] if best else (vocab.reasons[-1][0] if said else None)
    return {"reason": reason, "text": said, "unavoidable": reason in UNAVOIDABLE_REASONS or None}


def _read_score(text: str) -> dict[str, Any]:
    match = re.search(rf"\d+(?:\.\d+)?|[{_CN_DIGIT}]+", text)
    score: int | None = None
    if match:
        token = match.group(0)
        value = float(token) if token[0].isdigit() else chinese_quantity(token)
        if token == "零":
            value = 0
        if value is not None and 0 <= value <= 10 and float(value).is_integer():
            score = int(value)
    return {"score": score, "text": text.strip()}


# "把王姐设为A类", "王姐改成D类": the words around the name that only say "make her".
_CLASS_NAME_NOISE = re.compile(
    r"^(?:把|将|给)|(?:设置为|设置成|设为|设成|改为|改成|定为|定成|调为|调成|归为|归到|划为|列为|算|是)$"
)


def _verb_intent(
    clean: str,
    match: re.Match[str],
    vocab: Vocabulary,
    today: date,
    *,
    customer: str = "",
    text: str = "",
) -> Intent:
    """'王姐 流失 价格' -> lost(customer=王姐, reason=价格); `customer` when already known."""
    verb = match.group(0)
    kind, reader = vocab.verbs[verb.lower()]
    before = "" if customer else clean[: match.start()]
    after = clean[match.end() :].strip(" ·:-,，")
    name = (
        customer
        or re.sub(r"(?:说|:|的?电话|的?微信|的?消息|的?短信)$", "", before.strip(" ·:-,，")).strip()
    )
    name = re.sub(r"\s+", "", name)
    if reader == "class" and not customer:
        name = _CLASS_NAME_NOISE.sub("", name)
    clean = text or clean
    if reader == "items":
        items = scan_items(f"{before} {after}", vocab, today, customer=customer)
        if len(items) == 1 and items[0].customer:
            return Intent(
                kind=kind,
                text=clean,
                args=after,
                customer=items[0].customer,
                items=tuple(items),
                fields={"verb": verb},
            )
        return Intent(kind=kind, text=clean, args=after, customer=name, fields={"verb": verb})
    fields: dict[str, Any]
    if reader == "reaction":
        fields = {"reaction": REACTION_WORDS[verb], "text": after}
    elif reader == "reason":
        fields = _read_reason(after, verb, vocab)
    elif reader == "until":
        until = read_until(after, today)
        fields = {"until": until.isoformat() if until else None, "text": after}
    elif reader == "score":
        fields = _read_score(after)
    elif reader == "class":
        fields = {"value_class": VALUE_CLASS_WORDS.get(verb.upper(), "D"), "text": after}
    else:
        fields = {"text": after}
    return Intent(kind=kind, text=clean, args=after, customer=name, fields=fields)


# Replies to a numbered digest line: "1 已发", "2 回复了", "3 打过了 嫌贵", "4 流失 价格".
_EDGE_PUNCT = re.compile(r"^[\s,，.。!！·:：\-]+|[\s,，.。!！·:：\-]+$")
_NUMBERED_REPLY = re.compile(r"^(?P<n>\d{1,3})\s*[.、号:]?\s*(?P<rest>\D.*)$")
DIGEST_OUTCOME_WORDS: dict[str, str] = {
    **dict.fromkeys(("已发", "发了", "发过了", "已发送", "发送了", "已私聊", "发消息了"), "sent"),
    **dict.fromkeys(("打了", "打过了", "已打", "电话打了", "打过电话了", "已电话"), "called"),
    **dict.fromkeys(("上门了", "去过了", "已上门", "拜访了", "给了优惠"), "visited"),
    **dict.fromkeys(("已挽回", "挽回了", "回来了", "又订了"), "recovered"),
    **dict.fromkeys(("流失", "丢了", "不订了", "不来了"), "lost"),
    # Not an outcome yet: asks the bot to text the customer (app/bot/sms_commands.py).
    **dict.fromkeys(("发短信", "发个短信", "短信问候"), "sms"),
}


# What an offer cost, in a numbered reply: "3 上门了 送券20元", "3 花了30块", "3 优惠 ¥15".
# Only with 元/块/¥, so "等了2天" in a call's notes is never read as money.
_COST_WORDS = r"(?:花了|花费|花|成本|费用|优惠|送了|送|赠送|赠|券|礼品|礼物|折扣|让利|给了)"
_MONEY = r"(?:(?:¥|￥)\s*(?P<a>\d+(?:\.\d{1,2})?)|(?P<b>\d+(?:\.\d{1,2})?)\s*(?:元|块钱|块))"
_OFFER_COST = re.compile(_COST_WORDS + r"[^\d¥￥]{0,6}?" + _MONEY)
_COST_ONLY = re.compile(r"^" + _COST_WORDS + r"[^\d¥￥]{0,6}?" + _MONEY + r"$")
_BARE_MONEY = re.compile(r"^\s*" + _MONEY + r"$")


def _cost_cents(match: re.Match[str]) -> int:
    return round(float(match.group("a") or match.group("b")) * 100)


def _numbered_reply(clean: str, vocab: Vocabulary) -> Intent | None:
    match = _NUMBERED_REPLY.match(clean)
    if match is None:
        return None
    rest = _EDGE_PUNCT.sub("", match.group("rest"))
    number = int(match.group("n"))
    words = {**DIGEST_OUTCOME_WORDS, **REACTION_WORDS}
    for word in sorted(words, key=len, reverse=True):
        if rest.startswith(word):
            outcome = words[word]
            tail = rest[len(word) :]
            cost = _OFFER_COST.search(tail) or (
                _BARE_MONEY.match(tail) if outcome == "visited" else None
            )
            if cost is not None:
                tail = tail[: cost.start()] + tail[cost.end() :]
            fields: dict[str, Any] = {"outcome": outcome, "text": _EDGE_PUNCT.sub("", tail)}
            if cost is not None:
                fields["cost_cents"] = _cost_cents(cost)
            if outcome in ("lost", "called") and fields["text"]:
                label = _read_reason(tail, word, vocab)["reason"]
                fields["reason"] = loss_reason_code(label) or "other"
            elif outcome == "visited" and fields["text"]:
                # A visit's note is a reason only when it names one (嫌贵), not "聊得不错".
                label = _read_reason(tail, word, vocab)["reason"]
                if label is not None and label != vocab.reasons[-1][0]:
                    fields["reason"] = loss_reason_code(label)
            elif outcome == "lost":
                fields["reason"] = None
            kind = "sms_outreach" if outcome == "sms" else "digest_reply"
            return Intent(kind=kind, text=clean, number=number, fields=fields)
    only = _COST_ONLY.match(rest)
    if only is not None:
        fields = {"outcome": "cost", "cost_cents": _cost_cents(only), "text": rest}
        return Intent(kind="digest_reply", text=clean, number=number, fields=fields)
    return None


# --- half quantities --------------------------------------------------------------------------


def _half_read(match: re.Match[str]) -> tuple[str, int, str] | None:
    """(the name's characters the match took, the whole units below the half, the unit):
    '张三两桶半' -> ('三', 2, '桶'); None when the count is no count."""
    if match.group("dec"):
        return "", int(float(match.group("dec"))), match.group("dec_unit")
    if match.group("half_unit"):
        return "", 0, match.group("half_unit")
    read = _quantity_at(match)
    if read is None:
        return None
    quantity, skip = read
    return match.group("qty")[:skip], quantity, match.group("unit")


def _half_quantity(clean: str, vocab: Vocabulary, today: date) -> Intent | None:
    """An order of "一桶半": orders count whole units, so the owner is asked which whole
    number they mean (rounded down, rounded up); None when there is no half quantity."""
    halves = list(vocab.half_pattern.finditer(clean))
    reads = [_half_read(m) for m in halves]
    if not halves or None in reads:
        return None
    options: list[dict[str, Any]] = []
    for up in (0, 1):
        text, end = "", 0
        for match, read in zip(halves, reads, strict=True):
            assert read is not None  # checked above; narrows the type for mypy
            name_part, count, unit = read
            if count + up == 0:
                break  # "半桶" rounded down is nothing: not a choice
            whole = f"{name_part}{count + up}{UNIT_TYPOS.get(unit, unit)}"
            text, end = text + clean[end : match.start()] + whole, match.end()
        else:
            text += clean[end:]
            intent = parse(text, vocab=vocab, today=today)
            if not intent.items:
                return None  # "暂停 半个月": not an order after all
            items = [
                {"customer": i.customer, "quantity": i.quantity, "unit": i.unit}
                for i in intent.items
            ]
            options.append({"text": text, "items": items})
    said = [m.group(0)[len(r[0]) :] for m, r in zip(halves, reads, strict=True) if r]
    return Intent(kind="half_quantity", text=clean, fields={"said": said, "options": options})


# --- settings ---------------------------------------------------------------------------------


def _read_setting(args: str) -> dict[str, Any]:
    """'提醒倍数 1.8' -> the setting's key and the number; None for what is not there."""
    key: str | None = None
    rest = args
    for word in sorted(SETTING_WORDS, key=len, reverse=True):
        at = args.find(word)
        if at >= 0:
            key, rest = SETTING_WORDS[word], args[at + len(word) :]
            break
    value: float | None = None
    number = re.search(rf"\d+(?:\.\d+)?|[{_CN_DIGIT}]+", rest)
    if number:
        token = number.group(0)
        value = float(token) if token[0].isdigit() else chinese_quantity(token)
    return {"setting": key, "value": value, "text": args}


def parse(text: str, *, vocab: Vocabulary, today: date) -> Intent:
    """Classify one message; `today` is the shop's date, used to read 昨天 / 周三 / 到月底."""
    raw = text
    if len(raw) > MAX_MESSAGE_CHARS:
        return Intent(kind="too_long", text=raw[:MAX_MESSAGE_CHARS])
    clean = normalize(raw)
    if not clean:
        return Intent(kind="empty", text=raw)
    lowered = clean.lower()
    if lowered in vocab.phrases:
        return Intent(kind=vocab.phrases[lowered], text=clean)
    for word, kind in vocab.prefixes.items():
        if lowered.startswith(word) and len(lowered) > len(word):
            args = clean[len(word) :].strip(" :：,，")
            if kind == "new_customer":
                return Intent(kind=kind, text=clean, args=args, fields=_parse_new_customer(args))
            if kind == "settings":
                return Intent(kind=kind, text=clean, args=args, fields=_read_setting(args))
            customer = args if kind == "card" else ""
            return Intent(kind=kind, text=clean, args=args, customer=customer)
    if clean in CANCEL_WORDS:
        return Intent(kind="cancel", text=clean)
    if clean.isdigit() and len(clean) <= 2:
        return Intent(kind="choice", text=clean, number=int(clean))
    numbered = _numbered_reply(clean, vocab)
    if numbered is not None:
        return numbered
    half = _half_quantity(clean, vocab, today)
    if half is not None:
        return half
    forwarded = _FORWARDED.match(clean)
    if forwarded:
        # What a customer wrote, forwarded with their name in front: they are the customer.
        name = re.sub(r"\s+", "", forwarded.group("n1") or forwarded.group("n2") or "")
        body = forwarded.group("body")
        if _looks_like_name(name):
            items = scan_items(body, vocab, today, customer=name)
            if items and all(i.customer == name for i in items):
                return Intent(kind="order", text=clean, items=tuple(items))
            verb = vocab.verb_pattern.search(body) if vocab.verb_pattern else None
            if verb:
                return _verb_intent(body, verb, vocab, today, customer=name, text=clean)
            if not vocab.quantity_pattern.search(body):
                # A customer's words with no order in them: kept as a note, not guessed at.
                return Intent(kind="unknown", text=clean)
    verb = vocab.verb_pattern.search(clean) if vocab.verb_pattern else None
    if verb:
        return _verb_intent(clean, verb, vocab, today)
    items = scan_items(clean, vocab, today)
    if items:
        return Intent(kind="order", text=clean, items=tuple(items))
    if vocab.quantity_pattern.search(clean):
        return Intent(kind="unknown", text=clean)  # a quantity but nobody to give it to
    if _looks_like_name(clean):
        return Intent(kind="card", text=clean, args=clean, customer=clean)
    return Intent(kind="unknown", text=clean)
