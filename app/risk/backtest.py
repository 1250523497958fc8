"""`huitou backtest`: replay a shop's own history and show how the alerts would have done.

At cutoffs every `step` days (at least 180 days of history before the first, and `horizon`
days after the last so that outcomes are known) the engine scores every customer from the
orders on or before the cutoff only; calibration inside the engine also only uses windows
closed by then, so nothing leaks from the future. Each assessment is then compared with what
happened next.

Definitions (all pooled over cutoffs):
- Evaluated: customers with >= 2 purchase days by the cutoff who are not already `lost`
  (an owner watches those; the lost are counted apart).
- Churned ("no order in the next N days"): no order in (cutoff, cutoff + N].
- Alert: stage quiet or at_risk at the cutoff. Also reported: at_risk only; newly alerted
  (alert now, not at the previous cutoff); and the practitioners' 1.5x rule
  (days since last > 1.5 x the plain mean interval) as a baseline.
- Precision = churned among alerted; recall = alerted among churned; false alarms per week =
  alerted customers who did order within N days, divided by the weeks replayed
  (cutoffs x step / 7; for "newly alerted" that is new wasted calls per week).
- AUC and Brier score of churn_probability against the churn label.
- Lead time, over customers who really left (their last order in the file is followed by
  more than N days without one) and whose last order falls in the replayed period: the day
  Huitou would first have alerted (check_on as computed right after that last order), the
  day the 1.5x rule would have fired, and the day Huitou would have called them lost.
  "Lead over the rule" = rule day - alert day (positive: Huitou warned earlier).
- Threshold scan: quiet_ratio in 1.2..2.0 x quiet_probability in 0.3..0.8, reusing the
  arrays of the replay (a customer is yellow when overdue_ratio > quiet_ratio, or
  1 - p_alive > quiet_probability, or a recorded warning fired — the engine's own rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt

from app.risk.batch import STAGE_CODE, ScoreArrays, score_arrays
from app.risk.config import RiskConfig
from app.risk.history import OrderArrays
from app.risk.season import epoch_day, from_epoch_day
from app.risk.signals import EVENT_SIGNAL_MASK, Level, max_level

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

MIN_HISTORY_DAYS = 180
MAX_CUTOFFS = 40
RULE_RATIO = 1.5
QUIET_RATIOS = tuple(round(1.2 + 0.1 * i, 1) for i in range(9))  # 1.2 .. 2.0
QUIET_PROBABILITIES = tuple(round(0.3 + 0.1 * i, 1) for i in range(6))  # 0.3 .. 0.8
PRECISION_FLOOR = 0.6
AUC_BINS = 10_000


class BacktestError(Exception):
    """A replay that cannot run; `str()` is the Chinese line the owner sees."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(f"无法回测:{zh}")
        self.en = en


@dataclass(frozen=True)
class AlertStats:
    name: str
    label: str
    alerts: int
    true_alerts: int
    false_alarms: int
    missed: int
    weeks: float

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else math.nan

    @property
    def recall(self) -> float:
        churned = self.true_alerts + self.missed
        return self.true_alerts / churned if churned else math.nan

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    @property
    def false_alarms_per_week(self) -> float:
        return self.false_alarms / self.weeks if self.weeks else math.nan


@dataclass(frozen=True)
class LeadTimes:
    """Days, over customers who really left (see module docstring)."""

    customers: int
    alert_after_last: F64  # alert day - last order day
    rule_after_last: F64
    lost_after_last: F64

    def median(self, values: F64) -> float:
        return float(np.median(values)) if values.size else math.nan

    @property
    def lead_over_rule(self) -> F64:
        result: F64 = self.rule_after_last - self.alert_after_last
        return result

    @property
    def warning_before_lost(self) -> F64:
        result: F64 = self.lost_after_last - self.alert_after_last
        return result


@dataclass(frozen=True)
class ThresholdChoice:
    quiet_ratio: float
    quiet_probability: float
    stats: AlertStats
    criterion: str

    def settings(self, config: RiskConfig) -> dict[str, float]:
        """RiskConfig keys to set (at_risk thresholds raised when they would sit below)."""
        keys: dict[str, float] = {
            "quiet_ratio": self.quiet_ratio,
            "quiet_probability": self.quiet_probability,
        }
        if config.at_risk_ratio <= self.quiet_ratio:
            keys["at_risk_ratio"] = round(self.quiet_ratio + 0.5, 1)
        if config.at_risk_probability <= self.quiet_probability:
            keys["at_risk_probability"] = round(self.quiet_probability + 0.1, 2)
        return keys


@dataclass
class CutoffRow:
    cutoff: date
    evaluated: int
    churned: int
    alerts: int
    true_alerts: int
    already_lost: int


@dataclass
class BacktestReport:
    horizon: int
    step: int
    cutoffs: list[date]
    weeks: float
    evaluated: int  # customer x cutoff pairs
    churned: int
    already_lost: int
    alerts: list[AlertStats]
    auc: float
    brier: float
    base_brier: float  # Brier of always predicting the base rate
    reliability: list[tuple[float, float, int]]  # (mean predicted, observed, count) per decile
    lead: LeadTimes
    grid: dict[tuple[float, float], AlertStats]
    best_f1: ThresholdChoice | None
    best_recall: ThresholdChoice | None  # max recall with precision >= PRECISION_FLOOR
    config: RiskConfig
    per_cutoff: list[CutoffRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def suggestion(self) -> ThresholdChoice | None:
        return self.best_recall or self.best_f1

    def alert(self, name: str) -> AlertStats:
        return next(a for a in self.alerts if a.name == name)


def plan_cutoffs(
    first_day: int, last_day: int, *, horizon: int, step: int,
    start: date | None = None, end: date | None = None,
) -> tuple[list[int], int, list[str]]:  # fmt: skip
    """Cutoff days (ascending, ending at the latest possible), the step used, and notes."""
    if step < 1:
        raise BacktestError("--step 至少为 1 天。", "--step must be at least 1 day.")
    notes: list[str] = []
    earliest = first_day + MIN_HISTORY_DAYS
    latest = last_day - horizon
    if start is not None:
        if epoch_day(start) < earliest:
            notes.append(
                f"--from 早于可回测的第一天 {from_epoch_day(earliest)}(需先有 {MIN_HISTORY_DAYS} "
                "天历史),已改用该日"
            )
        earliest = max(earliest, epoch_day(start))
    if end is not None:
        if epoch_day(end) > latest:
            notes.append(
                f"--to 晚于 {from_epoch_day(latest)}(之后 {horizon} 天的结果还不知道),已改用该日"
            )
        latest = min(latest, epoch_day(end))
    if earliest > latest:
        span = last_day - first_day + 1
        raise BacktestError(
            f"历史太短或区间不对:需要至少 {MIN_HISTORY_DAYS} 天历史 + {horizon} 天结果期"
            f"(共 {MIN_HISTORY_DAYS + horizon} 天),文件只有 {span} 天"
            f"({from_epoch_day(first_day)} — {from_epoch_day(last_day)})。",
            f"history too short or range empty: needs {MIN_HISTORY_DAYS} days of history plus "
            f"{horizon} days of outcomes; the file spans {span} days.",
        )
    if (latest - earliest) // step + 1 > MAX_CUTOFFS:
        wider = math.ceil((latest - earliest) / (MAX_CUTOFFS - 1))
        notes.append(f"回放点太多,步长从 {step} 天放宽到 {wider} 天(最多 {MAX_CUTOFFS} 个)")
        step = wider
    cutoffs = list(range(latest, earliest - 1, -step))[::-1]
    return cutoffs, step, notes


def assess(orders: OrderArrays, cutoff: date, config: RiskConfig) -> ScoreArrays:
    """The engine's view at `cutoff`: only orders on or before it matter (see tests)."""
    return score_arrays(orders, as_of=cutoff, config=config)


def _alerted(scores: ScoreArrays) -> B:
    result: B = (scores.stage == STAGE_CODE["quiet"]) | (scores.stage == STAGE_CODE["at_risk"])
    return result


def _auc_from_histograms(pos: I64, neg: I64) -> float:
    """Mann-Whitney AUC from binned scores (ties within a bin count one half)."""
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    neg_below = np.concatenate(([0], np.cumsum(neg)[:-1]))
    wins = float(np.sum(pos * (neg_below + 0.5 * neg)))
    return wins / (n_pos * n_neg)


def run_backtest(
    orders: OrderArrays,
    *,
    config: RiskConfig | None = None,
    step: int = 14,
    start: date | None = None,
    end: date | None = None,
) -> BacktestReport:
    config = config or RiskConfig()
    horizon = config.horizon_days
    if orders.day.size == 0:
        raise BacktestError("没有订单。", "there are no orders.")
    first_day, last_day = int(orders.day.min()), int(orders.day.max())
    cutoffs, step, notes = plan_cutoffs(
        first_day, last_day, horizon=horizon, step=step, start=start, end=end
    )
    n = orders.n_customers
    weeks = len(cutoffs) * step / 7

    # Each customer's last order in the whole file, and whether they really left.
    final_last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(final_last, orders.customer, orders.day)
    really_left = (final_last >= 0) & (last_day - final_last > horizon)

    names = ("alert", "at_risk", "new_alert", "rule")
    tp = dict.fromkeys(names, 0)
    fp = dict.fromkeys(names, 0)
    fn = dict.fromkeys(names, 0)
    grid_shape = (len(QUIET_RATIOS), len(QUIET_PROBABILITIES))
    grid_tp = np.zeros(grid_shape, dtype=np.int64)
    grid_fp = np.zeros(grid_shape, dtype=np.int64)
    grid_fn = np.zeros(grid_shape, dtype=np.int64)
    pos_hist = np.zeros(AUC_BINS, dtype=np.int64)
    neg_hist = np.zeros(AUC_BINS, dtype=np.int64)
    sq_error = 0.0
    rel_p = np.zeros(10)
    rel_y = np.zeros(10)
    rel_n = np.zeros(10, dtype=np.int64)
    evaluated_total = churned_total = lost_total = 0
    lead_alert: list[I64] = []
    lead_rule: list[I64] = []
    lead_lost: list[I64] = []
    per_cutoff: list[CutoffRow] = []

    previous = assess(orders, from_epoch_day(cutoffs[0] - step), config)
    previous_alert = _alerted(previous) & (previous.n_orders >= 2)
    previous_day = cutoffs[0] - step
    for cutoff in cutoffs:
        scores = assess(orders, from_epoch_day(cutoff), config)
        window = (orders.day > cutoff) & (orders.day <= cutoff + horizon)
        returned = np.zeros(n, dtype=bool)
        returned[orders.customer[window]] = True
        churned = ~returned
        lost = scores.stage == STAGE_CODE["lost"]
        repeat = scores.n_orders >= 2
        population = repeat & ~lost
        lost_total += int((repeat & lost).sum())

        alert = _alerted(scores)
        with np.errstate(invalid="ignore"):
            rule = scores.days_since_last > RULE_RATIO * scores.mean_gap_days
        flags = {
            "alert": alert,
            "at_risk": scores.stage == STAGE_CODE["at_risk"],
            "new_alert": alert & ~previous_alert,
            "rule": rule,
        }
        y = churned[population]
        for name, flag in flags.items():
            f = flag[population]
            tp[name] += int((f & y).sum())
            fp[name] += int((f & ~y).sum())
            fn[name] += int((~f & y).sum())

        # Threshold scan on the same customers (the engine's yellow rule, re-derived).
        ratio = scores.overdue_ratio[population]
        gone = 1.0 - scores.p_alive[population]
        # Recorded warnings alert at once, as in the engine (none come from an order file).
        signalled = max_level(scores.signals[population] & EVENT_SIGNAL_MASK) >= int(Level.YELLOW)
        for i, qr in enumerate(QUIET_RATIOS):
            by_ratio = signalled | (ratio > qr)
            for j, qp in enumerate(QUIET_PROBABILITIES):
                f = by_ratio | (gone > qp)
                grid_tp[i, j] += int((f & y).sum())
                grid_fp[i, j] += int((f & ~y).sum())
                grid_fn[i, j] += int((~f & y).sum())

        p = scores.churn_probability[population]
        bins = np.minimum((p * AUC_BINS).astype(np.int64), AUC_BINS - 1)
        pos_hist += np.bincount(bins[y], minlength=AUC_BINS)
        neg_hist += np.bincount(bins[~y], minlength=AUC_BINS)
        sq_error += float(np.sum((p - y) ** 2))
        decile = np.minimum((p * 10).astype(np.int64), 9)
        rel_p += np.bincount(decile, weights=p, minlength=10)
        rel_y += np.bincount(decile, weights=y.astype(np.float64), minlength=10)
        rel_n += np.bincount(decile, minlength=10)
        evaluated_total += int(population.sum())
        churned_total += int(y.sum())

        # Lead times: customers whose final order lies in (previous cutoff, this cutoff].
        leaving = really_left & (final_last > previous_day) & (final_last <= cutoff) & repeat
        if leaving.any():
            last = final_last[leaving]
            lead_alert.append(scores.check_day[leaving] - last)
            rule_day = np.floor(RULE_RATIO * scores.mean_gap_days[leaving]).astype(np.int64) + 1
            lead_rule.append(rule_day)
            lead_lost.append(scores.lost_day[leaving] - last)

        per_cutoff.append(
            CutoffRow(
                cutoff=from_epoch_day(cutoff),
                evaluated=int(population.sum()),
                churned=int(y.sum()),
                alerts=int(flags["alert"][population].sum()),
                true_alerts=int((flags["alert"][population] & y).sum()),
                already_lost=int((repeat & lost).sum()),
            )
        )
        previous_alert = alert & repeat
        previous_day = cutoff

    labels = {
        "alert": "回头客提醒(黄+红)",
        "at_risk": "只算红色",
        "new_alert": "新冒出来的提醒",
        "rule": "1.5倍经验规则(对照)",
    }
    alerts = [
        AlertStats(name, labels[name], tp[name] + fp[name], tp[name], fp[name], fn[name], weeks)
        for name in names
    ]
    grid = {
        (qr, qp): AlertStats(
            "scan",
            f"quiet_ratio={qr} quiet_probability={qp}",
            int(grid_tp[i, j] + grid_fp[i, j]),
            int(grid_tp[i, j]),
            int(grid_fp[i, j]),
            int(grid_fn[i, j]),
            weeks,
        )
        for i, qr in enumerate(QUIET_RATIOS)
        for j, qp in enumerate(QUIET_PROBABILITIES)
    }
    best_f1 = best_recall = None
    scored = [(key, s) for key, s in grid.items() if s.alerts]
    if scored:
        key, s = max(scored, key=lambda kv: (kv[1].f1, kv[1].precision))
        best_f1 = ThresholdChoice(key[0], key[1], s, "综合最好")
        floor = [(k, s) for k, s in scored if s.precision >= PRECISION_FLOOR]
        if floor:
            key, s = max(floor, key=lambda kv: (kv[1].recall, kv[1].precision))
            best_recall = ThresholdChoice(
                key[0], key[1], s, f"准确率不低于{PRECISION_FLOOR:.0%}时抓到最多"
            )

    base_rate = churned_total / evaluated_total if evaluated_total else math.nan
    reliability = [
        (float(rel_p[k] / rel_n[k]), float(rel_y[k] / rel_n[k]), int(rel_n[k]))
        for k in range(10)
        if rel_n[k]
    ]

    def joined(parts: list[I64]) -> F64:
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)

    lead = LeadTimes(
        customers=int(sum(part.size for part in lead_alert)),
        alert_after_last=joined(lead_alert),
        rule_after_last=joined(lead_rule),
        lost_after_last=joined(lead_lost),
    )
    if evaluated_total == 0:
        notes.append("没有可评估的老客户(至少下过 2 天单)")
    return BacktestReport(
        horizon=horizon,
        step=step,
        cutoffs=[from_epoch_day(c) for c in cutoffs],
        weeks=weeks,
        evaluated=evaluated_total,
        churned=churned_total,
        already_lost=lost_total,
        alerts=alerts,
        auc=_auc_from_histograms(pos_hist, neg_hist),
        brier=sq_error / evaluated_total if evaluated_total else math.nan,
        base_brier=base_rate * (1 - base_rate) if evaluated_total else math.nan,
        reliability=reliability,
        lead=lead,
        grid=grid,
        best_f1=best_f1,
        best_recall=best_recall,
        config=config,
        per_cutoff=per_cutoff,
        notes=notes,
    )


# --- rendering --------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.0%}"


def _num(x: float, digits: int = 1) -> str:
    return "—" if math.isnan(x) else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def width(text: str) -> int:  # CJK characters take two columns in a terminal
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)

    widths = [max(width(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - width(cell))
            out.append(cell + pad if i == 0 else pad + cell)
        return "  ".join(out).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *[line(r) for r in rows]]


def _owner_row(report: BacktestReport) -> list[tuple[float, AlertStats]]:
    """The scanned multiples the owner could set: at today's probability, below the red one."""
    config = report.config
    return [
        (qr, s)
        for (qr, qp), s in sorted(report.grid.items())
        if qp == config.quiet_probability and qr < config.at_risk_ratio and s.alerts
    ]


def owner_choice(report: BacktestReport) -> tuple[float, AlertStats] | None:
    """The reminder multiple to suggest, with how it did, or None without enough data.

    The owner can change only the multiple (设置 提醒倍数), so the choice is made among
    `_owner_row` by the same rule as the full scan: most customers caught at PRECISION_FLOOR
    precision, else the best F1.
    """
    row = _owner_row(report)
    if not row:
        best = report.suggestion
        return None if best is None else (best.quiet_ratio, best.stats)
    precise = [(qr, s) for qr, s in row if s.precision >= PRECISION_FLOOR]
    if precise:
        return max(precise, key=lambda kv: (kv[1].recall, kv[1].precision))
    return max(row, key=lambda kv: (kv[1].f1, kv[1].precision))


def _versus_rule(days: float) -> str:
    if math.isnan(days) or days == 0:
        return "和经验规则差不多同时"
    return f"比经验规则{'早' if days > 0 else '晚'} {abs(days):.0f} 天"


def render_report(report: BacktestReport) -> str:
    """The replay's results in the owner's words, ending with something they can do."""
    h = report.horizon
    share = _pct(report.churned / report.evaluated) if report.evaluated else "—"
    lines = [
        f"回测:用店里自己的历史回放了 {len(report.cutoffs)} 次(每 {report.step} 天一次,"
        f"{report.cutoffs[0]} 到 {report.cutoffs[-1]},共 {report.weeks:.0f} 周)。",
        f"看了 {report.evaluated:,} 人次老客户(至少下过 2 天单、当时还没流失),"
        f"其中 {report.churned:,} 人次之后 {h} 天没再下单({share});"
        f"另有 {report.already_lost:,} 人次当时已流失,不算在内。",
        "",
        f"提醒准不准(之后 {h} 天真没再下单,算提醒对了):",
    ]
    rows = [
        [
            a.label,
            f"{a.alerts:,}",
            _pct(a.precision),
            _pct(a.recall),
            _num(a.false_alarms_per_week),
        ]
        for a in report.alerts
    ]
    lines += _table(["提醒", "次数", "准确率", "抓到率", "每周白提醒"], rows)
    lines += [
        "准确率:被提醒的人里,后来真没再下单的比例。抓到率:真没再下单的人里,事先被提醒到的比例。",
        "每周白提醒:提醒了、其实自己会回来的人数。",
        "",
        f"流失概率排得准不准:AUC {_num(report.auc, 2)}(0.5 等于瞎猜,1 是全对);"
        f"平均误差 {_num(report.brier, 3)}(越小越好,只报平均比例是 {_num(report.base_brier, 3)})。",
        "说多少、实际多少:"
        + "  ".join(f"{p:.0%}→{o:.0%}({c:,}人次)" for p, o, c in report.reliability),
        "",
    ]
    lead = report.lead
    if lead.customers:
        ahead = float(np.mean(lead.lead_over_rule > 0))
        lines += [
            f"能提前多久({lead.customers:,} 位真的走了的老客户,从他最后一单算起,取中间值):",
            f"  回头客第 {_num(lead.median(lead.alert_after_last), 0)} 天提醒;"
            f"1.5倍经验规则第 {_num(lead.median(lead.rule_after_last), 0)} 天;"
            f"第 {_num(lead.median(lead.lost_after_last), 0)} 天判为流失。",
            f"  {_versus_rule(lead.median(lead.lead_over_rule))}({ahead:.0%} 的人更早);"
            f"从提醒到判为流失,还有 {_num(lead.median(lead.warning_before_lost), 0)} 天可以挽回。",
            "",
        ]
    else:
        lines += ["能提前多久:回放期内没有真的走了的老客户。", ""]
    current_ratio = report.config.quiet_ratio
    lines.append(f"提醒倍数(超过平时间隔几倍没订就提醒),现在是 {current_ratio:g}:")
    rows = []
    for ratio, stats in _owner_row(report):
        mark = "(现在)" if ratio == current_ratio else ""
        rows.append(
            [
                f"{ratio:g} 倍{mark}",
                _pct(stats.precision),
                _pct(stats.recall),
                _num(stats.false_alarms_per_week),
            ]
        )
    if rows:
        lines += _table(["提醒倍数", "准确率", "抓到率", "每周白提醒"], rows)
    choice = owner_choice(report)
    if choice is None:
        lines.append("建议:数据还不够,先不用改。")
    elif choice[0] == current_ratio:
        lines.append(f"建议:现在的提醒倍数 {current_ratio:g} 就合适,不用改。")
    else:
        ratio, stats = choice
        lines.append(
            f"建议:把提醒倍数改成 {ratio:g}(准确率 {_pct(stats.precision)},"
            f"抓到率 {_pct(stats.recall)})。在聊天里发:设置 提醒倍数 {ratio:g}"
        )
    lines += [f"注意:{note}" for note in report.notes]
    return "\n".join(lines)
