"""Outreach scripts: the context a template gets, the offers a shop can make, and rendering.

Everything here is pure except `render_step`, which reads templates through
app.templating (shop override -> industry pack -> generic, StrictUndefined). Every key a
template may use is always present in the context; optional facts are None, so a template
must say `{% if %}` and a typo fails in tests instead of leaving a blank in a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from app.outreach.tiers import Step
from app.templating import render_message

# Recall budget per customer in cents (domain §3). Car: by CLV tier. Water and retail keep it
# small and key it by value class; a shop overrides either with settings["offer_budget_cents"].
DEFAULT_BUDGETS: dict[str, dict[str, tuple[int, int]]] = {
    "car": {
        "diamond": (200_000, 500_000),
        "platinum": (80_000, 200_000),
        "gold": (30_000, 80_000),
        "silver": (5_000, 30_000),
        # No CLV figure yet: the value class stands in for the tier.
        "A": (80_000, 200_000),
        "B": (30_000, 80_000),
        "C": (5_000, 30_000),
    },
    "water": {"A": (2_000, 6_000), "B": (1_000, 3_000), "C": (500, 1_500)},
    "retail": {"A": (3_000, 10_000), "B": (1_000, 5_000), "C": (500, 2_000)},
}

# The offers a shop makes, with what each costs the shop (settings["offers"] overrides).
DEFAULT_OFFERS: dict[str, dict[str, dict[str, Any]]] = {
    "water": {
        "upgrade": {"label": "下个月换成高端山泉水,差价我们出", "cost_cents": 2_000},
        "gift": {"label": "送一桶水", "cost_cents": 1_000},
        "round_up_step_cents": {"value": 1_000},
    },
    "car": {
        "upgrade": {"label": "下次保养免费升级全合成机油", "cost_cents": 30_000},
        "gift": {"label": "送一次全车精洗", "cost_cents": 8_000},
        "round_up_step_cents": {"value": 10_000},
    },
    "retail": {
        "upgrade": {"label": "一个月内买常用货都按会员价", "cost_cents": 3_000},
        "gift": {"label": "送一份店里的小礼物", "cost_cents": 1_500},
        "round_up_step_cents": {"value": 1_000},
    },
}

# Offers a shop says in a phone call (tier 2), by branch.
DEFAULT_CALL_OFFERS: dict[str, dict[str, str]] = {
    "water": {
        "returning_offer": "老朋友回来,这次订水多送一桶",
        "make_good": "下一桶我们送,不收钱",
    },
    "car": {
        "returning_offer": "老朋友回来,这次保养工时费减半",
        "make_good": "上次的问题免费给您重新处理一遍",
    },
    "retail": {
        "returning_offer": "老朋友回来,这次买东西送一份小礼物",
        "make_good": "这次的东西给您换新的,不收钱",
    },
}

REACTION_LABELS = {"warm": "回得挺热情", "none": "没回", "cold": "回得冷淡", None: "还没记回复"}
# A contact with no reaction recorded, said by what it came to.
CONTACT_LABELS = {"called": "打通了", "visited": "见过面/给过优惠"}
TIER_LABELS = {0: "关怀回访", 1: "微信问候", 2: "电话", 3: "上门/优惠"}
CLV_TIER_LABELS = {"diamond": "钻石", "platinum": "铂金", "gold": "黄金", "silver": "白银"}
REASON_LABELS = {
    "price": "嫌价格高",
    "service": "服务没做好",
    "quality": "对质量有顾虑",
    "competitor": "换了别家",
    "forgot": "忘了",
    "distance": "嫌远",
    "moved": "搬家/关门",
    "other": "其他原因",
}


@dataclass(frozen=True)
class CustomerHistory:
    """What the scripts say about one customer, gathered by the caller from its records."""

    name: str
    value_class: str
    address_as: str | None = None  # how staff address them: 王姐, 李总; defaults to the name
    is_company: bool = False  # an office or a business: 贵公司, never 您家
    last_order_on: date | None = None
    usual_quantity: float | None = None
    interval_days: float | None = None
    days_since_last: int | None = None
    clv_tier: str | None = None
    ticket_balance: int | None = None  # water tickets left
    buckets_held: int | None = None  # deposit buckets at the customer's
    balance_cents: int | None = None  # leftover prepaid balance
    complaint: str | None = None  # the last complaint, in the owner's words
    complaint_fix: str | None = None  # what the shop changed
    last_outreach_tier: int | None = None
    last_outreach_on: date | None = None
    last_reaction: str | None = None
    last_outcome: str | None = None  # what the last contact came to (called, visited…)
    loss_reason: str | None = None
    promise: str | None = None  # what was promised when they were won back
    last_service: str | None = None  # car: 小保养, 换轮胎
    mileage_km: int | None = None  # car: odometer at the last visit


@dataclass(frozen=True)
class Offer:
    """One thing the owner may offer, and what it costs the shop."""

    kind: str  # upgrade | round_up | gift
    label: str
    cost_cents: int


def tier_budget(
    industry: str, *, value_class: str, clv_tier: str | None, settings: Mapping[str, Any]
) -> tuple[int, int]:
    """The (low, high) recall budget in cents for this customer."""
    table = {**DEFAULT_BUDGETS.get(industry, DEFAULT_BUDGETS["retail"])}
    for key, pair in (settings.get("offer_budget_cents") or {}).items():
        table[str(key)] = (int(pair[0]), int(pair[1]))
    key = clv_tier if clv_tier in table else value_class
    return table.get(key, (0, 0))


def offer_menu(
    industry: str,
    *,
    budget: tuple[int, int],
    balance_cents: int | None,
    settings: Mapping[str, Any],
) -> tuple[Offer, ...]:
    """The shop's offers that fit under the budget's ceiling, cheapest first."""
    base = DEFAULT_OFFERS.get(industry, DEFAULT_OFFERS["retail"])
    custom = settings.get("offers") or {}
    menu: list[Offer] = []
    for kind in ("upgrade", "gift"):
        spec = {**base[kind], **(custom.get(kind) or {})}
        menu.append(Offer(kind=kind, label=str(spec["label"]), cost_cents=int(spec["cost_cents"])))
    step = int((custom.get("round_up_step_cents") or base["round_up_step_cents"])["value"])
    if balance_cents is not None and balance_cents > 0 and step > 0:
        # "Clear the slate": top the leftover up to the next round sum, as a voucher.
        voucher = (balance_cents // step + 1) * step
        menu.append(
            Offer(
                kind="round_up",
                label=f"余额凑整成{voucher // 100}元代金券",
                cost_cents=voucher - balance_cents,
            )
        )
    return tuple(
        sorted((o for o in menu if 0 <= o.cost_cents <= budget[1]), key=lambda o: o.cost_cents)
    )


def script_context(
    step: Step,
    history: CustomerHistory,
    *,
    industry: str,
    shop_name: str,
    settings: Mapping[str, Any],
    sender: str | None = None,
) -> dict[str, Any]:
    """Every variable an outreach template may use, optional facts as None."""
    h = history
    days_overdue = None
    if h.days_since_last is not None and h.interval_days is not None:
        days_overdue = max(0, h.days_since_last - round(h.interval_days))
    budget = tier_budget(
        industry, value_class=h.value_class, clv_tier=h.clv_tier, settings=settings
    )
    call_offers = {**DEFAULT_CALL_OFFERS.get(industry, DEFAULT_CALL_OFFERS["retail"])}
    call_offers.update({k: str(v) for k, v in (settings.get("call_offers") or {}).items()})
    last_outreach = None
    if h.last_outreach_tier is not None and h.last_outreach_on is not None:
        last_outreach = {
            "tier": h.last_outreach_tier,
            "tier_label": TIER_LABELS[h.last_outreach_tier],
            "on": h.last_outreach_on,
            "reaction": h.last_reaction,
            "reaction_label": REACTION_LABELS.get(h.last_reaction, REACTION_LABELS[None])
            if h.last_reaction is not None
            else CONTACT_LABELS.get(h.last_outcome or "", REACTION_LABELS[None]),
        }
    unit_price = settings.get("unit_price_cents")
    return {
        "step": asdict(step),
        "shop_name": shop_name,
        "sender": sender or shop_name,
        "name": h.name,
        "address_as": h.address_as or h.name,
        "is_company": h.is_company,
        "unit": str(settings.get("unit", {"car": "次", "retail": "件"}.get(industry, "桶"))),
        "unit_price_cents": int(unit_price) if unit_price else None,
        "last_order_on": h.last_order_on,
        "usual_quantity": h.usual_quantity,
        "interval_days": h.interval_days,
        "days_since_last": h.days_since_last,
        "days_overdue": days_overdue,
        "value_class": h.value_class,
        "clv_tier": h.clv_tier,
        "clv_tier_label": CLV_TIER_LABELS.get(h.clv_tier) if h.clv_tier else None,
        "ticket_balance": h.ticket_balance,
        "buckets_held": h.buckets_held,
        "balance_cents": h.balance_cents,
        "complaint": h.complaint,
        "complaint_fix": h.complaint_fix,
        "last_outreach": last_outreach,
        "loss_reason": h.loss_reason,
        "loss_reason_label": REASON_LABELS.get(h.loss_reason) if h.loss_reason else None,
        "promise": h.promise,
        "last_service": h.last_service,
        "mileage_km": h.mileage_km,
        "returning_offer": call_offers["returning_offer"],
        "make_good": call_offers["make_good"],
        "budget_low_cents": budget[0],
        "budget_high_cents": budget[1],
        "offers": [
            asdict(o)
            for o in offer_menu(
                industry, budget=budget, balance_cents=h.balance_cents, settings=settings
            )
        ],
    }


def render_step(
    step: Step,
    context: Mapping[str, Any],
    *,
    templates_dir: Path,
    industry: str,
    shop_slug: str | None,
) -> str:
    """The step's script as text, from the shop's override, its pack or the generic one."""
    return render_message(templates_dir, industry, shop_slug, step.template, **context)
