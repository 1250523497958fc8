"""Who to contact today, how, and who does it: the three-tier ladder as pure rules.

No I/O and no clock: everything arrives in OutreachFacts (including `today`), so each rule
is one test with hand-made facts. `next_step` answers with the next step and the date it is
due — possibly a future date (a tier 2 call waiting out its N days, a care check next week);
`due_today` is the digest's filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from app.risk.assess import Stage
from app.risk.signals import BY_CODE, EVENT_SIGNAL_MASK

VALUE_CLASSES = ("A", "B", "C", "D")  # mirrors app.customers.models, kept import-light
CLV_TIERS = ("diamond", "platinum", "gold", "silver")
REACTIONS = ("warm", "none", "cold")
# "forgot" and "distance" are the car-service reasons (domain §5) next to the water ones.
LOSS_REASONS = (
    "price", "service", "quality", "competitor", "forgot", "distance", "moved", "other",
)  # fmt: skip
KINDS = ("message", "call", "visit", "care")
TEMPLATES = {
    1: "outreach/tier1_message.txt.j2",
    2: "outreach/tier2_call.txt.j2",
    3: "outreach/tier3_offer.txt.j2",
    0: "outreach/care_check.txt.j2",
}
# Recalled customers: a check two days after the first order back (time to try it), weekly
# through month one, then monthly until the 90-day watch ends (domain §6).
CARE_OFFSETS = (2, 7, 14, 21, 28, 60, 90)

# The owner's words for lost reasons (app.bot.parse.REASONS) -> our codes.
_REASON_BY_LABEL = {
    "价格": "price",
    "服务不及时": "service",
    "服务不好": "service",
    "水质": "quality",
    "水质疑虑": "quality",
    "商品质量": "quality",
    "竞争对手": "competitor",
    "忘了": "forgot",
    "距离远": "distance",
    "搬家/倒闭": "moved",
    "搬家": "moved",
    "倒闭": "moved",
    "其他": "other",
}


def loss_reason_code(label: str | None) -> str | None:
    """A recorded reason ("价格", "搬家/倒闭") as a code; unknown words count as "other"."""
    if label is None or not label.strip():
        return None
    text = label.strip()
    return text if text in LOSS_REASONS else _REASON_BY_LABEL.get(text, "other")


def clv_tier(clv_yuan: float) -> str:
    """Car-service CLV tier: diamond > 80k, platinum 40–80k, gold 20–40k, silver < 20k yuan."""
    if clv_yuan > 80_000:
        return "diamond"
    if clv_yuan >= 40_000:
        return "platinum"
    if clv_yuan >= 20_000:
        return "gold"
    return "silver"


@dataclass(frozen=True)
class Policy:
    """A shop's outreach settings, validated on construction."""

    escalate_after_days: int = 3
    cooldown_days: int = 3
    high_value_classes: tuple[str, ...] = ("A",)
    high_value_tiers: tuple[str, ...] = ("diamond", "platinum")
    respond_within_hours: int = 48
    watch_days: int = 90
    # Reasons an offer can answer. "other" and "moved" give an offer nothing to fix.
    offer_reasons: tuple[str, ...] = (
        "price", "service", "quality", "competitor", "forgot", "distance",
    )  # fmt: skip

    def __post_init__(self) -> None:
        for name in ("escalate_after_days", "cooldown_days", "respond_within_hours", "watch_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if self.escalate_after_days < 1:
            raise ValueError("escalate_after_days must be at least 1 (a day to reply)")
        if self.cooldown_days < 0:
            raise ValueError("cooldown_days cannot be negative")
        if self.respond_within_hours < 1:
            raise ValueError("respond_within_hours must be at least 1")
        if self.watch_days < CARE_OFFSETS[-1]:
            raise ValueError(f"watch_days must cover the care schedule ({CARE_OFFSETS[-1]} days)")
        unknown = set(self.high_value_classes) - set(VALUE_CLASSES)
        if unknown:
            raise ValueError(f"unknown value classes in high_value_classes: {sorted(unknown)}")
        if "D" in self.high_value_classes:
            raise ValueError("D-class customers are never chased; D cannot be high value")
        unknown = set(self.high_value_tiers) - set(CLV_TIERS)
        if unknown:
            raise ValueError(f"unknown CLV tiers in high_value_tiers: {sorted(unknown)}")
        unknown = set(self.offer_reasons) - set(LOSS_REASONS)
        if unknown:
            raise ValueError(f"unknown reasons in offer_reasons: {sorted(unknown)}")
        if "moved" in self.offer_reasons:
            raise ValueError("moved/closed is unavoidable churn; no offer answers it")


@dataclass(frozen=True)
class OutreachFacts:
    """Everything the ladder needs about one customer today."""

    today: date
    stage: str  # a Stage value
    value_class: str = "C"
    value_at_risk_cents: int = 0
    clv_tier: str | None = None
    days_since_last: int | None = None
    expected_interval_days: float | None = None
    overdue_ratio: float | None = None
    signal_codes: tuple[str, ...] = ()  # fired signals, for the step's reason
    warning_on: date | None = None  # first quiet (yellow) day of the current episode
    last_outreach_tier: int | None = None  # 0 = a care contact
    last_outreach_on: date | None = None
    last_reaction: str | None = None  # warm | none | cold | None (nothing recorded yet)
    loss_reason: str | None = None
    moved_closed: bool = False
    paused_until: date | None = None
    recently_recalled: date | None = None  # the day of the order that won them back

    def __post_init__(self) -> None:
        if self.stage not in {s.value for s in Stage}:
            raise ValueError(f"unknown stage {self.stage!r}")
        if self.value_class not in VALUE_CLASSES:
            raise ValueError(f"unknown value class {self.value_class!r}")
        if self.clv_tier is not None and self.clv_tier not in CLV_TIERS:
            raise ValueError(f"unknown CLV tier {self.clv_tier!r}")
        if self.last_reaction is not None and self.last_reaction not in REACTIONS:
            raise ValueError(f"unknown reaction {self.last_reaction!r}")
        if self.loss_reason is not None and self.loss_reason not in LOSS_REASONS:
            raise ValueError(f"unknown loss reason {self.loss_reason!r}")
        if self.last_outreach_tier is not None and self.last_outreach_tier not in TEMPLATES:
            raise ValueError(f"unknown outreach tier {self.last_outreach_tier!r}")
        if (self.last_outreach_tier is None) != (self.last_outreach_on is None):
            raise ValueError("last outreach needs both its tier and its date")


@dataclass(frozen=True)
class Step:
    """One follow-up to do: which tier, why, by when and by whom."""

    tier: int  # 1-3, or 0 for a recalled customer's care check
    kind: str  # message | call | visit | care
    reason_code: str
    due: date
    owner_role: str  # staff | owner
    template: str


def is_high_value(facts: OutreachFacts, policy: Policy) -> bool:
    """Class A or a top CLV tier: the owner handles these personally."""
    return facts.value_class in policy.high_value_classes or (
        facts.clv_tier is not None and facts.clv_tier in policy.high_value_tiers
    )


def _red(facts: OutreachFacts) -> bool:
    return facts.stage in (Stage.AT_RISK, Stage.LOST)


def _finding_reason(facts: OutreachFacts, *, fallback: str) -> str:
    """The most severe fired signal, else the stage. Among equals the owner's own record
    (水票快用完: it is what alerted) comes before an order pattern, then table order."""
    known = [BY_CODE[c] for c in facts.signal_codes if c in BY_CODE]
    if not known:
        return fallback
    return max(
        known, key=lambda spec: (int(spec.level), bool((1 << spec.bit) & int(EVENT_SIGNAL_MASK)))
    ).code


def _step(facts: OutreachFacts, policy: Policy, tier: int, reason: str, due: date) -> Step:
    # Cooldown: whatever the ladder says, nobody hears from us twice within a few days.
    if facts.last_outreach_on is not None:
        due = max(due, facts.last_outreach_on + timedelta(days=policy.cooldown_days))
    owner = tier == 3 or _red(facts) or is_high_value(facts, policy)
    return Step(
        tier=tier,
        kind={1: "message", 2: "call", 3: "visit", 0: "care"}[tier],
        reason_code=reason,
        due=due,
        owner_role="owner" if owner else "staff",
        template=TEMPLATES[tier],
    )


def _in_watch(facts: OutreachFacts, policy: Policy) -> bool:
    recalled = facts.recently_recalled
    return recalled is not None and recalled <= facts.today <= recalled + timedelta(
        days=policy.watch_days
    )


def _care_step(facts: OutreachFacts, policy: Policy) -> Step | None:
    """The next close-watch check after a win-back not yet covered by a contact."""
    recalled = facts.recently_recalled
    assert recalled is not None  # checked by _in_watch; narrows the type for mypy
    done = facts.last_outreach_on if facts.last_outreach_on is not None else None
    for offset in CARE_OFFSETS:
        on = recalled + timedelta(days=offset)
        if done is not None and done >= on:
            continue  # a contact on or after this date covers it
        reason = (
            "care_first_order" if offset == CARE_OFFSETS[0]
            else "care_weekly" if offset <= 28
            else "care_monthly"
        )  # fmt: skip
        return _step(facts, policy, 0, reason, on)
    return None


def _offer_fits(facts: OutreachFacts, policy: Policy) -> bool:
    return is_high_value(facts, policy) and facts.loss_reason in policy.offer_reasons


def next_step(facts: OutreachFacts, policy: Policy) -> Step | None:
    """The next follow-up for this customer and its due date, or None when there is none."""
    if facts.moved_closed or facts.loss_reason == "moved":
        return None  # unavoidable churn: off the list
    if facts.value_class == "D":
        return None  # costs more than it brings: never chased
    if facts.paused_until is not None and facts.today <= facts.paused_until:
        return None  # the owner was told they're away until then
    red = _red(facts)
    # A win-back under close watch gets care checks; only a slide back to red re-opens the ladder.
    if _in_watch(facts, policy) and not red:
        return _care_step(facts, policy)
    if facts.stage not in (Stage.QUIET, Stage.AT_RISK, Stage.LOST):
        return None
    start = facts.warning_on or facts.today
    # Outreach before this episode's warning belongs to an earlier episode.
    in_episode = facts.last_outreach_on is not None and facts.last_outreach_on >= start
    offer = _offer_fits(facts, policy)
    if not in_episode:
        if red:
            tier = 3 if offer else 2
            reason = (
                f"reason_{facts.loss_reason}"
                if offer
                else _finding_reason(facts, fallback=str(facts.stage))
            )
            return _step(facts, policy, tier, reason, start)
        return _step(facts, policy, 1, _finding_reason(facts, fallback="quiet"), start)

    last_on = facts.last_outreach_on
    assert last_on is not None  # in_episode implies a date; narrows the type for mypy
    last_tier = facts.last_outreach_tier or 1  # a care contact counts as a light touch
    reaction = facts.last_reaction
    if last_tier == 1:
        if reaction == "warm" and not red:
            return None  # they answered kindly: probably just away; wait for the order
        if red:
            reason = _finding_reason(facts, fallback=str(facts.stage))
            return _step(facts, policy, 2, reason, last_on)
        reason = "cold_reply" if reaction == "cold" else "no_reply"
        return _step(facts, policy, 2, reason, last_on + timedelta(days=policy.escalate_after_days))
    if last_tier == 2 and offer and reaction != "warm":
        return _step(facts, policy, 3, f"reason_{facts.loss_reason}", last_on)
    # After a call (or a visit) the ladder is done: the owner records the outcome.
    return None


def due_today(facts: OutreachFacts, policy: Policy) -> Step | None:
    """The next step if it is due today or overdue (the digest's filter)."""
    step = next_step(facts, policy)
    return step if step is not None and step.due <= facts.today else None


def within_48h(
    warning_on: date | datetime,
    first_contact: datetime | None,
    now: datetime,
    *,
    hours: int = 48,
) -> bool:
    """Whether the response target holds: contacted in time, or not yet late.

    A bare date is taken as midnight in `now`'s timezone, so aware and naive datetimes
    are never compared with each other.
    """
    if isinstance(warning_on, datetime):
        start = warning_on
    else:
        start = datetime.combine(warning_on, time(), tzinfo=now.tzinfo)
    deadline = start + timedelta(hours=hours)
    return (first_contact if first_contact is not None else now) <= deadline
