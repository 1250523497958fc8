"""The outreach ladder: who gets which tier, when, and who does it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.outreach.tiers import (
    CARE_OFFSETS,
    OutreachFacts,
    Policy,
    clv_tier,
    due_today,
    is_high_value,
    loss_reason_code,
    next_step,
    within_48h,
)

TODAY = date(2026, 6, 17)
POLICY = Policy()


def facts(**kw: object) -> OutreachFacts:
    base: dict[str, object] = {
        "today": TODAY,
        "stage": "quiet",
        "value_class": "B",
        "days_since_last": 38,
        "expected_interval_days": 25.0,
        "overdue_ratio": 1.52,
        "signal_codes": ("interval_stretch",),
        "warning_on": TODAY,
    }
    base.update(kw)
    return OutreachFacts(**base)  # type: ignore[arg-type]


def days(n: int) -> date:
    return TODAY + timedelta(days=n)


# --- the ladder -------------------------------------------------------------------------


def test_yellow_gets_a_tier1_message_today_by_staff() -> None:
    step = next_step(facts(), POLICY)
    assert step is not None
    assert (step.tier, step.kind, step.due, step.owner_role) == (1, "message", TODAY, "staff")
    assert step.reason_code == "interval_stretch"
    assert step.template == "outreach/tier1_message.txt.j2"


def test_yellow_without_findings_says_quiet() -> None:
    step = next_step(facts(signal_codes=()), POLICY)
    assert step is not None and step.reason_code == "quiet"


def test_tier1_no_reply_escalates_to_a_call_after_three_days() -> None:
    f = facts(
        warning_on=days(-4), last_outreach_tier=1, last_outreach_on=days(-3), last_reaction="none"
    )
    step = next_step(f, POLICY)
    assert step is not None
    assert (step.tier, step.kind, step.reason_code, step.due) == (2, "call", "no_reply", TODAY)
    assert step.owner_role == "staff"


def test_tier1_unrecorded_reply_counts_as_no_reply() -> None:
    f = facts(warning_on=days(-4), last_outreach_tier=1, last_outreach_on=days(-3))
    step = next_step(f, POLICY)
    assert step is not None and (step.tier, step.reason_code) == (2, "no_reply")


def test_tier1_call_waits_out_the_reply_window() -> None:
    f = facts(
        warning_on=days(-2), last_outreach_tier=1, last_outreach_on=days(-1), last_reaction="none"
    )
    step = next_step(f, POLICY)
    assert step is not None and step.tier == 2 and step.due == days(2)
    assert due_today(f, POLICY) is None


def test_escalation_window_follows_policy() -> None:
    f = facts(warning_on=days(-6), last_outreach_tier=1, last_outreach_on=days(-5))
    step = next_step(f, Policy(escalate_after_days=5))
    assert step is not None and step.due == TODAY


def test_cold_reply_escalates_to_a_call() -> None:
    f = facts(
        warning_on=days(-4), last_outreach_tier=1, last_outreach_on=days(-3), last_reaction="cold"
    )
    step = due_today(f, POLICY)
    assert step is not None and (step.tier, step.reason_code) == (2, "cold_reply")


def test_warm_reply_at_yellow_waits() -> None:
    f = facts(
        warning_on=days(-4), last_outreach_tier=1, last_outreach_on=days(-3), last_reaction="warm"
    )
    assert next_step(f, POLICY) is None


def test_red_goes_straight_to_a_call_by_the_owner() -> None:
    f = facts(stage="at_risk", signal_codes=("interval_stretch", "interval_stretch_red"))
    step = next_step(f, POLICY)
    assert step is not None
    assert (step.tier, step.kind, step.reason_code, step.owner_role) == (
        2,
        "call",
        "interval_stretch_red",
        "owner",
    )


def test_red_after_a_warm_tier1_still_calls() -> None:
    f = facts(
        stage="at_risk",
        warning_on=days(-10),
        last_outreach_tier=1,
        last_outreach_on=days(-5),
        last_reaction="warm",
    )
    step = due_today(f, POLICY)
    assert step is not None and step.tier == 2


def test_tier3_for_a_class_with_known_reason_after_the_call() -> None:
    f = facts(
        value_class="A",
        warning_on=days(-10),
        last_outreach_tier=2,
        last_outreach_on=days(-3),
        last_reaction="cold",
        loss_reason="price",
    )
    step = due_today(f, POLICY)
    assert step is not None
    assert (step.tier, step.kind, step.reason_code, step.owner_role) == (
        3,
        "visit",
        "reason_price",
        "owner",
    )


def test_tier3_at_red_for_a_class_with_known_reason() -> None:
    f = facts(stage="at_risk", value_class="A", loss_reason="service")
    step = next_step(f, POLICY)
    assert step is not None and step.tier == 3


def test_top_clv_tier_counts_as_high_value() -> None:
    f = facts(
        value_class="B",
        clv_tier="diamond",
        warning_on=days(-10),
        last_outreach_tier=2,
        last_outreach_on=days(-3),
        last_reaction="none",
        loss_reason="competitor",
    )
    step = next_step(f, POLICY)
    assert step is not None and step.tier == 3


@pytest.mark.parametrize(
    "change",
    [
        {"value_class": "B"},  # not high value
        {"loss_reason": None},  # reason unknown
        {"loss_reason": "other"},  # nothing an offer could fix
        {"last_reaction": "warm"},  # the call went well: no offer needed
    ],
)
def test_no_tier3_without_high_value_and_a_known_reason(change: dict[str, object]) -> None:
    base: dict[str, object] = {
        "value_class": "A",
        "warning_on": days(-10),
        "last_outreach_tier": 2,
        "last_outreach_on": days(-3),
        "last_reaction": "cold",
        "loss_reason": "price",
    }
    base.update(change)
    assert next_step(facts(**base), POLICY) is None


def test_red_b_class_with_reason_gets_a_call_not_a_visit() -> None:
    step = next_step(facts(stage="at_risk", loss_reason="price"), POLICY)
    assert step is not None and step.tier == 2


def test_after_tier3_the_ladder_is_done() -> None:
    f = facts(
        value_class="A",
        stage="at_risk",
        warning_on=days(-20),
        last_outreach_tier=3,
        last_outreach_on=days(-5),
        last_reaction="none",
        loss_reason="price",
    )
    assert next_step(f, POLICY) is None


@pytest.mark.parametrize("stage", ["quiet", "at_risk", "lost"])
def test_d_class_is_never_chased(stage: str) -> None:
    assert next_step(facts(value_class="D", stage=stage), POLICY) is None


def test_d_class_gets_no_care_either() -> None:
    assert (
        next_step(facts(value_class="D", stage="recovered", recently_recalled=days(-2)), POLICY)
        is None
    )


@pytest.mark.parametrize("change", [{"moved_closed": True}, {"loss_reason": "moved"}])
def test_moved_or_closed_leaves_the_list(change: dict[str, object]) -> None:
    assert next_step(facts(stage="at_risk", value_class="A", **change), POLICY) is None


def test_paused_customer_is_left_alone_until_the_pause_ends() -> None:
    assert next_step(facts(paused_until=TODAY), POLICY) is None
    step = next_step(facts(paused_until=days(-1)), POLICY)
    assert step is not None and step.tier == 1


@pytest.mark.parametrize("stage", ["new", "active", "recovered"])
def test_customers_in_rhythm_get_nothing(stage: str) -> None:
    assert next_step(facts(stage=stage), POLICY) is None


def test_cooldown_blocks_a_second_contact_within_three_days() -> None:
    # Red the day after a tier 1 message: the call waits until the cooldown ends.
    f = facts(
        stage="at_risk",
        warning_on=days(-5),
        last_outreach_tier=1,
        last_outreach_on=days(-1),
        last_reaction="cold",
    )
    step = next_step(f, POLICY)
    assert step is not None and step.tier == 2 and step.due == days(2)
    assert due_today(f, POLICY) is None
    assert due_today(replace(f, today=days(2)), POLICY) is not None


def test_cooldown_spans_episodes() -> None:
    # Contacted two days ago in an earlier episode; a new warning today still waits.
    f = facts(warning_on=TODAY, last_outreach_tier=0, last_outreach_on=days(-2))
    step = next_step(f, POLICY)
    assert step is not None and step.tier == 1 and step.due == days(1)


def test_earlier_episode_outreach_restarts_the_ladder() -> None:
    f = facts(
        warning_on=days(-1), last_outreach_tier=2, last_outreach_on=days(-60), last_reaction="none"
    )
    step = next_step(f, POLICY)
    assert step is not None and step.tier == 1 and step.due == days(-1)


def test_a_class_tier1_goes_to_the_owner() -> None:
    step = next_step(facts(value_class="A"), POLICY)
    assert step is not None and step.tier == 1 and step.owner_role == "owner"


def test_platinum_goes_to_the_owner_gold_to_staff() -> None:
    platinum = next_step(facts(clv_tier="platinum"), POLICY)
    gold = next_step(facts(clv_tier="gold"), POLICY)
    assert platinum is not None and platinum.owner_role == "owner"
    assert gold is not None and gold.owner_role == "staff"


# --- recalled customers: close watch --------------------------------------------------


def test_recalled_customer_gets_care_checks_on_schedule() -> None:
    recalled = date(2026, 6, 1)
    expected = [
        (2, "care_first_order"),
        (7, "care_weekly"),
        (14, "care_weekly"),
        (21, "care_weekly"),
        (28, "care_weekly"),
        (60, "care_monthly"),
        (90, "care_monthly"),
    ]
    assert [offset for offset, _ in expected] == list(CARE_OFFSETS)
    last: date | None = None
    for offset, reason in expected:
        on = recalled + timedelta(days=offset)
        f = facts(
            stage="recovered",
            today=on,
            recently_recalled=recalled,
            last_outreach_tier=None if last is None else 0,
            last_outreach_on=last,
        )
        step = due_today(f, POLICY)
        assert step is not None, offset
        assert (step.tier, step.kind, step.reason_code, step.due) == (0, "care", reason, on)
        assert step.template == "outreach/care_check.txt.j2"
        last = on  # staff did the check that day
    after = facts(
        stage="recovered",
        today=recalled + timedelta(days=91),
        recently_recalled=recalled,
        last_outreach_tier=0,
        last_outreach_on=last,
    )
    assert next_step(after, POLICY) is None


def test_care_check_not_due_before_its_date() -> None:
    f = facts(stage="recovered", recently_recalled=TODAY)
    step = next_step(f, POLICY)
    assert step is not None and step.due == days(2)
    assert due_today(f, POLICY) is None


def test_missed_care_check_stays_due() -> None:
    f = facts(stage="recovered", recently_recalled=days(-10))
    step = due_today(f, POLICY)
    assert step is not None and step.reason_code == "care_first_order" and step.due == days(-8)


def test_recalled_care_replaces_tier1_when_quiet() -> None:
    step = next_step(facts(stage="quiet", recently_recalled=days(-5)), POLICY)
    assert step is not None and step.kind == "care"


def test_recalled_customer_sliding_to_red_reopens_the_ladder() -> None:
    step = next_step(facts(stage="at_risk", recently_recalled=days(-20)), POLICY)
    assert step is not None and step.tier == 2


def test_care_for_a_class_goes_to_the_owner() -> None:
    step = next_step(facts(stage="recovered", value_class="A", recently_recalled=days(-2)), POLICY)
    assert step is not None and step.owner_role == "owner"


# --- the 48-hour target --------------------------------------------------------------

SH = ZoneInfo("Asia/Shanghai")


def test_contact_within_48_hours_meets_the_target() -> None:
    warning = datetime(2026, 6, 15, 8, tzinfo=SH)
    now = datetime(2026, 6, 20, 8, tzinfo=SH)
    assert within_48h(warning, datetime(2026, 6, 17, 8, tzinfo=SH), now)
    assert not within_48h(warning, datetime(2026, 6, 17, 8, 1, tzinfo=SH), now)


def test_no_contact_yet_is_fine_until_48_hours_pass() -> None:
    warning = date(2026, 6, 15)
    assert within_48h(warning, None, datetime(2026, 6, 16, 23, tzinfo=SH))
    assert not within_48h(warning, None, datetime(2026, 6, 17, 0, 1, tzinfo=SH))


def test_48_hour_window_is_configurable() -> None:
    warning = datetime(2026, 6, 15, 8)
    assert not within_48h(warning, datetime(2026, 6, 16, 9), datetime(2026, 6, 20), hours=24)


# --- validation and helpers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"escalate_after_days": 0}, "escalate_after_days"),
        ({"escalate_after_days": 2.5}, "whole number"),
        ({"cooldown_days": -1}, "cooldown_days"),
        ({"cooldown_days": True}, "whole number"),
        ({"respond_within_hours": 0}, "respond_within_hours"),
        ({"watch_days": 30}, "care schedule"),
        ({"high_value_classes": ("A", "Z")}, "unknown value classes"),
        ({"high_value_classes": ("A", "D")}, "never chased"),
        ({"high_value_tiers": ("gold", "bronze")}, "unknown CLV tiers"),
        ({"offer_reasons": ("price", "moved")}, "unavoidable"),
        ({"offer_reasons": ("cheap",)}, "unknown reasons"),
    ],
)
def test_policy_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Policy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stage": "sleepy"}, "unknown stage"),
        ({"value_class": "E"}, "unknown value class"),
        ({"clv_tier": "bronze"}, "unknown CLV tier"),
        ({"last_reaction": "angry"}, "unknown reaction"),
        ({"loss_reason": "weather"}, "unknown loss reason"),
        ({"last_outreach_tier": 4, "last_outreach_on": TODAY}, "unknown outreach tier"),
        ({"last_outreach_tier": 1}, "both its tier and its date"),
    ],
)
def test_facts_reject_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        facts(**kwargs)


def test_high_value_helper() -> None:
    assert is_high_value(facts(value_class="A"), POLICY)
    assert not is_high_value(facts(value_class="B", clv_tier="gold"), POLICY)
    assert is_high_value(
        facts(value_class="C", clv_tier="gold"),
        Policy(high_value_tiers=("diamond", "platinum", "gold")),
    )


def test_clv_tier_thresholds() -> None:
    assert [clv_tier(v) for v in (90_000, 80_000, 40_000, 39_999, 20_000, 500)] == [
        "diamond",
        "platinum",
        "platinum",
        "gold",
        "gold",
        "silver",
    ]


def test_owner_reason_words_map_to_codes() -> None:
    assert loss_reason_code("价格") == "price"
    assert loss_reason_code("服务不及时") == "service"
    assert loss_reason_code("搬家/倒闭") == "moved"
    assert loss_reason_code("忘了") == "forgot"
    assert loss_reason_code("competitor") == "competitor"
    assert loss_reason_code("说不清") == "other"
    assert loss_reason_code(None) is None and loss_reason_code("  ") is None
