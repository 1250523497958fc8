"""Risk-engine settings: thresholds, horizons, signal weights. Data, validated when built."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

Seasonality = Literal["none", "auto", "water"]

# Log-odds added to a customer's per-purchase dropout probability when a signal fires.
# Priors from the practitioners' guides (domain.md §2): red signals weigh more than yellow.
DEFAULT_SIGNAL_WEIGHTS: dict[str, float] = {
    "size_drop": 0.4,
    "frequency_drop": 0.4,
    "ticket_drop": 0.4,
    "ignored_2": 0.5,
    "ignored_4": 1.2,
    "cold_reply": 0.8,
    "low_satisfaction": 0.6,
    "complaint_open": 1.2,
    "contact_deleted": 2.5,
    "tickets_running_out": 0.3,
    "tickets_not_renewed": 0.6,
    "deposit_refunded": 4.0,
}

# An industry's defaults, under whatever the shop's own settings say. Read at every build, not
# copied into settings, so a shop created before a default existed has it too. Car service
# (domain §2, §3): counted from the service cycle, yellow at cycle + 30 days, red at + 90,
# lost past six months overdue and never within six months of a visit; its CLV tiers
# (diamond > 80k yuan) value a customer over the years a car is serviced, not one year.
INDUSTRY_RISK_DEFAULTS: dict[str, dict[str, Any]] = {
    "car": {
        "default_interval_days": 120.0,
        "quiet_extra_days": 30,
        "at_risk_extra_days": 90,
        "lost_extra_days": 180,
        "lost_min_days": 180,
        "clv_horizon_days": 5 * 365,
    },
}


@dataclass(frozen=True)
class RiskConfig:
    """Everything the engine needs besides the data; per shop, from its settings."""

    horizon_days: int = 90  # churn_probability = P(no order in this many days)
    clv_horizon_days: int = 365
    quiet_ratio: float = 1.5  # yellow: days since last > 1.5 x usual interval
    at_risk_ratio: float = 2.0  # red
    lost_ratio: float = 3.0
    lost_min_days: int = 60
    # Car packs count from the service cycle: yellow at cycle + 30 days, red at + 90, lost
    # at + 180 (or the ratio, whichever comes first; 0 = the ratio alone).
    quiet_extra_days: int = 0
    at_risk_extra_days: int = 0
    lost_extra_days: int = 0
    quiet_probability: float = 0.5  # yellow also when churn_probability reaches this
    at_risk_probability: float = 0.75
    lost_probability: float = 0.95
    default_interval_days: float = 20.0  # prior interval when the shop has too little history
    recalled_watch_days: int = 90
    seasonality: Seasonality = "auto"
    # Recalibrate probabilities on the shop's own past (needs ~6 months of history).
    calibrate: bool = True
    signal_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SIGNAL_WEIGHTS))

    def __post_init__(self) -> None:
        if not 1.0 <= self.quiet_ratio < self.at_risk_ratio < self.lost_ratio:
            raise ValueError("ratios must satisfy 1 <= quiet_ratio < at_risk_ratio < lost_ratio")
        if not 0 < self.quiet_probability < self.at_risk_probability < self.lost_probability < 1:
            raise ValueError("probabilities must satisfy 0 < quiet < at_risk < lost < 1")
        if self.horizon_days < 1 or self.clv_horizon_days < 1:
            raise ValueError("horizons must be at least one day")
        if self.default_interval_days <= 0 or self.lost_min_days < 0:
            raise ValueError("default_interval_days must be > 0 and lost_min_days >= 0")
        offsets = (self.quiet_extra_days, self.at_risk_extra_days, self.lost_extra_days)
        if min(*offsets, self.recalled_watch_days) < 0:
            raise ValueError("day offsets must not be negative")
        if self.seasonality not in ("none", "auto", "water"):
            raise ValueError(f"unknown seasonality {self.seasonality!r}")
        unknown = set(self.signal_weights) - set(DEFAULT_SIGNAL_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown signal weights: {sorted(unknown)}")

    @classmethod
    def from_settings(cls, settings: dict[str, Any], industry: str | None = None) -> RiskConfig:
        """Build from a shop's settings over its industry's defaults; unknown keys belong to
        other features and are ignored."""
        names = {f.name for f in fields(cls)}
        merged = {**INDUSTRY_RISK_DEFAULTS.get(industry or "", {}), **settings}
        known = {k: v for k, v in merged.items() if k in names}
        if "signal_weights" in known:
            known["signal_weights"] = {**DEFAULT_SIGNAL_WEIGHTS, **known["signal_weights"]}
        return cls(**known)
