"""Outreach scripts render for every pack, under StrictUndefined, in the customer's own terms."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError

from app.config import PROJECT_ROOT
from app.outreach.render import (
    CustomerHistory,
    offer_menu,
    render_step,
    script_context,
    tier_budget,
)
from app.outreach.tiers import TEMPLATES, Step

TEMPLATES_DIR = PROJECT_ROOT / "message_templates"
PACKS = ("water", "car", "retail")
KINDS = {1: "message", 2: "call", 3: "visit", 0: "care"}
REASONS = {1: "interval_stretch", 2: "no_reply", 3: "reason_competitor", 0: "care_first_order"}
GROUP_BLAST = ("各位", "亲们", "大家", "群发", "家人们", "所有客户")

HISTORY = CustomerHistory(
    name="王秀兰",
    address_as="王姐",
    value_class="A",
    last_order_on=date(2026, 5, 10),
    usual_quantity=2,
    interval_days=25.3,
    days_since_last=38,
    clv_tier=None,
    ticket_balance=3,
    buckets_held=2,
    balance_cents=3_700,
    complaint="送得晚了两个小时",
    complaint_fix="加了一位师傅,下午的单两小时内到",
    last_outreach_tier=1,
    last_outreach_on=date(2026, 6, 14),
    last_reaction="none",
    loss_reason="competitor",
    promise="每次送到家门口",
    last_service="小保养",
    mileage_km=45_200,
)
BARE = CustomerHistory(name="李会计", value_class="C", last_order_on=date(2026, 5, 1))


def step_for(tier: int, reason: str | None = None) -> Step:
    return Step(
        tier=tier,
        kind=KINDS[tier],
        reason_code=reason or REASONS[tier],
        due=date(2026, 6, 17),
        owner_role="owner",
        template=TEMPLATES[tier],
    )


def context(tier: int, pack: str, history: CustomerHistory = HISTORY, **kw: Any) -> dict[str, Any]:
    if pack == "car" and history is HISTORY:
        history = replace(history, clv_tier="diamond")
    return script_context(
        step_for(tier, kw.pop("reason", None)),
        history,
        industry=pack,
        shop_name="清泉水站",
        settings=kw.pop("settings", {}),
        sender=kw.pop("sender", "小李"),
    )


def render(
    tier: int,
    pack: str,
    ctx: dict[str, Any],
    shop_slug: str | None = None,
    templates_dir: Path = TEMPLATES_DIR,
) -> str:
    return render_step(
        step_for(tier), ctx, templates_dir=templates_dir, industry=pack, shop_slug=shop_slug
    )


ALL = [(tier, pack) for pack in PACKS for tier in TEMPLATES]


@pytest.mark.parametrize(("tier", "pack"), ALL)
def test_every_template_renders_for_every_pack(tier: int, pack: str) -> None:
    text = render(tier, pack, context(tier, pack))
    assert "王姐" in text
    assert "None" not in text and "{{" not in text and "{%" not in text
    assert not re.search(r"\n\s*\n\s*\n", text), "no runs of blank lines"


@pytest.mark.parametrize(("tier", "pack"), ALL)
def test_every_template_renders_with_only_the_bare_facts(tier: int, pack: str) -> None:
    text = render(tier, pack, context(tier, pack, BARE, sender=None))
    assert "李会计" in text and "None" not in text


@pytest.mark.parametrize("reason", ["care_first_order", "care_weekly", "care_monthly"])
@pytest.mark.parametrize("pack", PACKS)
def test_care_check_wording_per_stage(pack: str, reason: str) -> None:
    text = render(0, pack, context(0, pack, reason=reason))
    assert ("5月10日" in text) == (reason == "care_first_order")
    assert "每次送到家门口" in text  # the promise is repeated so it is kept


@pytest.mark.parametrize(("tier", "pack"), ALL)
def test_missing_context_key_fails_rendering(tier: int, pack: str) -> None:
    full = context(tier, pack)
    render(tier, pack, full)
    # Every key the template evaluates for this customer must be required.
    used = [key for key in full if _fails_without(tier, pack, full, key)]
    assert used, "StrictUndefined must be on"
    assert "address_as" in used


def _fails_without(tier: int, pack: str, full: dict[str, Any], key: str) -> bool:
    ctx = {k: v for k, v in full.items() if k != key}
    try:
        render(tier, pack, ctx)
    except UndefinedError:
        return True
    return False


@pytest.mark.parametrize("pack", PACKS)
def test_each_referenced_key_is_required(pack: str) -> None:
    # A context missing any one key the tier-1 template names fails: nothing renders blank.
    from jinja2 import meta

    from app.templating import environment

    env = environment(TEMPLATES_DIR, pack, None)
    for tier in TEMPLATES:
        source = env.loader.get_source(env, TEMPLATES[tier])[0]  # type: ignore[union-attr]
        names = meta.find_undeclared_variables(env.parse(source))
        full = context(tier, pack)
        assert names <= set(full), f"{TEMPLATES[tier]} uses keys script_context lacks"
        for key in names:
            # Use the fullest customer so every conditional branch evaluates its variables.
            assert _fails_without(tier, pack, full, key), (pack, tier, key)


@pytest.mark.parametrize("pack", PACKS)
def test_tier1_is_personal_and_names_the_last_order(pack: str) -> None:
    text = render(1, pack, context(1, pack))
    assert "王姐" in text
    assert "5月10日" in text
    for phrase in GROUP_BLAST:
        assert phrase not in text, phrase


@pytest.mark.parametrize("pack", PACKS)
def test_tier2_has_all_three_branches(pack: str) -> None:
    ctx = context(2, pack)
    text = render(2, pack, ctx)
    assert "①" in text and "②" in text and "③" in text
    assert "忘了" in text
    assert "别家" in text and "老朋友回来" in text and "不施压" in text
    assert "对不起" in text and "加了一位师傅" in text and ctx["make_good"] in text
    assert "别家" in text and "哪里没做好" in text  # the one question


@pytest.mark.parametrize("pack", PACKS)
def test_tier3_offers_stay_within_the_tier_budget(pack: str) -> None:
    for value_class, tier in (
        ("A", None),
        ("B", None),
        ("C", None),
        ("A", "diamond"),
        ("B", "platinum"),
        ("C", "gold"),
        ("C", "silver"),
    ):
        history = replace(HISTORY, value_class=value_class, clv_tier=tier)
        ctx = context(3, pack, history)
        high = ctx["budget_high_cents"]
        assert ctx["offers"], (pack, value_class, tier)
        for offer in ctx["offers"]:
            assert 0 <= offer["cost_cents"] <= high
        text = render(3, pack, ctx)
        for amount in re.findall(r"约(\d+(?:\.\d+)?)元", text):
            assert float(amount) * 100 <= high


def test_car_budgets_follow_clv_tiers() -> None:
    expect = {
        "diamond": (200_000, 500_000),
        "platinum": (80_000, 200_000),
        "gold": (30_000, 80_000),
        "silver": (5_000, 30_000),
    }
    for tier, pair in expect.items():
        assert tier_budget("car", value_class="A", clv_tier=tier, settings={}) == pair


def test_offers_over_budget_are_left_out() -> None:
    menu = offer_menu("car", budget=(5_000, 20_000), balance_cents=None, settings={})
    assert [o.kind for o in menu] == ["gift"]  # the 300-yuan oil upgrade is over 200


def test_shop_settings_override_offers_and_budgets() -> None:
    settings = {
        "offer_budget_cents": {"A": [1_000, 2_500]},
        "offers": {
            "gift": {"label": "送两桶水", "cost_cents": 2_400},
            "upgrade": {"cost_cents": 9_000},
        },
    }
    ctx = context(3, "water", settings=settings)
    assert (ctx["budget_low_cents"], ctx["budget_high_cents"]) == (1_000, 2_500)
    labels = [o["label"] for o in ctx["offers"]]
    assert "送两桶水" in labels
    assert all("山泉水" not in label for label in labels)  # 90 yuan upgrade is over budget


def test_leftover_balance_rounds_up_into_a_voucher() -> None:
    menu = offer_menu("water", budget=(0, 10_000), balance_cents=3_700, settings={})
    voucher = next(o for o in menu if o.kind == "round_up")
    assert voucher.cost_cents == 300 and "40元" in voucher.label


@pytest.mark.parametrize("name", ["{{ config }}", "<script>alert(1)</script>", "{% raw %}"])
@pytest.mark.parametrize(("tier", "pack"), ALL)
def test_customer_names_render_literally(name: str, tier: int, pack: str) -> None:
    history = replace(HISTORY, name=name, address_as=name)
    text = render(tier, pack, context(tier, pack, history))
    assert name in text


def test_shop_override_wins(tmp_path: Path) -> None:
    override = tmp_path / "shops" / "qingquan" / "outreach"
    override.mkdir(parents=True)
    (override / "tier1_message.txt.j2").write_text("{{ address_as }},我们店换新址了,欢迎来坐坐。")
    ctx = context(1, "water")
    assert render(1, "water", ctx, "qingquan", tmp_path) == "王姐,我们店换新址了,欢迎来坐坐。"


def test_water_tier1_example() -> None:
    assert render(1, "water", context(1, "water")) == (
        "王姐,您好!我是清泉水站送水的小李。\n"
        "看了下本子,您家上次订水是5月10日,2桶,到今天38天了,想问问家里的水还够喝吗?\n"
        "您这儿还有3张水票,想喝了发个消息,我们就送上楼。\n"
        "上回您说送得晚了两个小时,这事我们一直记着,现在已经加了一位师傅,下午的单两小时内到。\n"
        "不是催您订水,就是惦记着,问候一声。您忙的话不用急着回。"
    )
