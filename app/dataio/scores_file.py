"""`huitou score`: an order file in, one assessed row per customer out (CSV), plus a summary.

Everything is columnar: a million customers are written by pyarrow from arrays, never by a
Python loop. The output appears atomically (written beside, then renamed), so a failed run
leaves no half-written file.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from app.dataio.orders_file import LoadedOrders, OrderFileError, read_orders
from app.risk.batch import NO_DAY, STAGES, ScoreArrays, score_arrays
from app.risk.config import RiskConfig
from app.risk.signals import BY_CODE, codes

F64 = npt.NDArray[np.float64]

STAGE_LABELS = {
    "new": "新客",
    "active": "正常",
    "quiet": "需关注",
    "at_risk": "有流失风险",
    "lost": "已流失",
    "recovered": "已挽回",
}
OUTPUT_COLUMNS = (
    "customer_id", "stage", "churn_probability", "p_alive", "expected_interval_days",
    "days_since_last", "overdue_ratio", "n_orders", "clv", "value_at_risk", "signals",
    "check_on", "stage_zh", "stage_reason_zh", "signals_zh",
)  # fmt: skip
# Show a progress bar on files this big even when stderr is not a terminal.
LARGE_FILE_BYTES = 50 * 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"  # so Excel opens the Chinese columns correctly


@dataclass
class ScoreRun:
    """What a scoring run did, for the summary."""

    loaded: LoadedOrders
    scores: ScoreArrays
    out: Path
    n_written: int
    n_orders_used: int
    stage_counts: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    config: RiskConfig = field(default_factory=RiskConfig)


class Phases:
    """Progress for reading / scoring / writing: a rich bar on stderr, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: object | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[Phases]:
        if not self.enabled:
            yield self
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress = progress
        with progress:
            yield self
        self._progress = None

    @contextlib.contextmanager
    def phase(self, description: str, total: float = 1.0) -> Iterator[Callable[[int, int], None]]:
        """A task; yields an update(done, total) callback; completes it on exit."""
        progress = self._progress
        if progress is None:
            yield lambda done, total: None
            return
        from rich.progress import Progress

        assert isinstance(progress, Progress)
        task = progress.add_task(description, total=total)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=max(total, 1))

        yield update
        task_total = progress.tasks[-1].total or 1.0
        progress.update(task, completed=task_total)


def show_progress(path: Path) -> bool:
    try:
        large = path.stat().st_size >= LARGE_FILE_BYTES
    except OSError:
        large = False
    return large or sys.stderr.isatty()


def signal_strings(mask: npt.NDArray[np.int64]) -> tuple[pa.Array, pa.Array]:
    """(codes joined by ';', Chinese labels joined by '、') per customer, via distinct masks."""
    distinct, inverse = np.unique(mask, return_inverse=True)
    code_lists = [codes(int(m)) for m in distinct]
    code_text = pa.array([";".join(c) for c in code_lists], type=pa.string())
    label_text = pa.array(["、".join(BY_CODE[c].label for c in cl) for cl in code_lists])
    take = pa.array(inverse.astype(np.int64).reshape(-1))
    return pc.take(code_text, take), pc.take(label_text, take)


def _floats(values: F64, digits: int) -> pa.Array:
    """Rounded floats; NaN becomes an empty cell."""
    rounded = np.round(values, digits)
    return pa.array(rounded, mask=np.isnan(rounded), type=pa.float64())


def _dates(days: npt.NDArray[np.int64]) -> pa.Array:
    missing = days == NO_DAY
    as_int = pa.array(np.where(missing, 0, days).astype(np.int32), mask=missing)
    return as_int.cast(pa.date32())


def _multiples(config: RiskConfig) -> dict[str, tuple[float, int]]:
    """Per alert stage: its multiple of the usual interval and the extra-days cap (0: none)."""
    return {
        "quiet": (config.quiet_ratio, config.quiet_extra_days),
        "at_risk": (config.at_risk_ratio, config.at_risk_extra_days),
        "lost": (config.lost_ratio, config.lost_extra_days),
    }


def stage_reasons(
    scores: ScoreArrays, order: npt.NDArray[np.int64], config: RiskConfig
) -> pa.Array:
    """Why each customer is at their stage, in the owner's words (empty for the normal ones).

    The stage comes from days without an order: past a multiple of the usual interval, or
    earlier when the rhythm model finds the silence very unusual for this customer. The
    reason says which, so 已流失 next to a modest churn probability reads as what it is.
    (An order file carries no recorded events, so no stage here comes from one.)
    """
    stage = scores.stage[order]
    interval = scores.expected_interval_days[order]
    ratio = np.nan_to_num(scores.overdue_ratio[order])
    multiple = np.full(len(order), np.inf)
    for name, (times, extra) in _multiples(config).items():
        hit = stage == STAGES.index(name)
        limit = np.minimum(times, 1 + extra / interval) if extra else np.full(len(order), times)
        multiple[hit] = limit[hit]
    # A stage day is the first day past its threshold (season.day_after), so the ratio rule
    # fired exactly when the ratio is past the multiple; otherwise the model's rule came first.
    by_ratio = ratio >= multiple
    days = pa.array(scores.days_since_last[order].astype(np.int64)).cast(pa.string())
    usual = pa.array(np.maximum(np.round(interval), 1).astype(np.int64)).cast(pa.string())
    alive = np.round(100 * np.nan_to_num(scores.p_alive[order])).astype(np.int64)
    shown_multiple = pa.array(np.where(np.isfinite(multiple), np.round(multiple, 1), 0.0))
    over = pc.binary_join_element_wise("超过", shown_multiple.cast(pa.string()), "倍", "")
    unusual = pc.binary_join_element_wise(
        "按他的规律已很反常,还在买的可能约", pa.array(alive).cast(pa.string()), "%", ""
    )
    text = pc.binary_join_element_wise(
        days, "天没订,平时约", usual, "天一次,", pc.if_else(by_ratio, over, unusual), ""
    )
    alerted = np.isin(stage, [STAGES.index(s) for s in ("quiet", "at_risk", "lost")])
    return pc.if_else(pa.array(alerted), text, "")


def score_table(
    loaded: LoadedOrders, scores: ScoreArrays, config: RiskConfig | None = None
) -> pa.Table:
    """One row per customer with an order on or before as_of, by value at risk (highest first)."""
    config = config or RiskConfig()
    bought = np.flatnonzero(scores.n_orders > 0)
    order = bought[np.argsort(-scores.value_at_risk[bought], kind="stable")]
    stage_names = pa.array(list(STAGES))
    stage_labels = pa.array([STAGE_LABELS[s] for s in STAGES])
    stage_index = pa.array(scores.stage[order].astype(np.int32))
    signal_codes, signal_labels = signal_strings(scores.signals[order])
    columns: dict[str, pa.Array] = {
        "customer_id": pc.take(loaded.customer_ids, pa.array(order)),
        "stage": pc.take(stage_names, stage_index),
        "churn_probability": _floats(scores.churn_probability[order], 4),
        "p_alive": _floats(scores.p_alive[order], 4),
        "expected_interval_days": _floats(scores.expected_interval_days[order], 1),
        "days_since_last": pa.array(scores.days_since_last[order].astype(np.int64)),
        "overdue_ratio": _floats(scores.overdue_ratio[order], 3),
        "n_orders": pa.array(scores.n_orders[order]),
        "clv": _floats(scores.clv[order], 2),
        "value_at_risk": _floats(scores.value_at_risk[order], 2),
        "signals": signal_codes,
        "check_on": _dates(scores.check_day[order]),
        "stage_zh": pc.take(stage_labels, stage_index),
        "stage_reason_zh": stage_reasons(scores, order, config),
        "signals_zh": signal_labels,
    }
    return pa.table({name: columns[name] for name in OUTPUT_COLUMNS})


def write_csv_atomic(table: pa.Table, out: Path) -> None:
    """UTF-8 with BOM; written to a temporary file beside `out`, then renamed over it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with pa.OSFile(str(temporary), "wb") as sink:
            sink.write(UTF8_BOM)
            pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(quoting_style="needed"))
        os.replace(temporary, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def default_output(orders: Path) -> Path:
    return orders.with_name(f"{orders.stem}_scores.csv")


def run_score(
    orders: Path,
    *,
    out: Path | None = None,
    as_of: date | None = None,
    config: RiskConfig | None = None,
    progress: bool | None = None,
) -> ScoreRun:
    """Read, score and write; raises OrderFileError before anything is written."""
    config = config or RiskConfig()
    out = out or default_output(orders)
    phases = Phases(show_progress(orders) if progress is None else progress)
    seconds: dict[str, float] = {}
    with phases.running():
        start = time.perf_counter()
        with phases.phase("读取 reading") as update:
            loaded = read_orders(orders, as_of=as_of, progress=update)
        seconds["read"] = time.perf_counter() - start
        used = loaded.n_rows - loaded.n_after_as_of
        if used == 0:
            raise OrderFileError(
                orders,
                "nothing_to_score",
                f"{loaded.as_of} 及之前没有订单(最早一单是 {loaded.first_date})。",
                f"no orders on or before {loaded.as_of} (the first is {loaded.first_date}).",
            )
        start = time.perf_counter()
        with phases.phase("评分 scoring"):
            scores = score_arrays(loaded.orders, as_of=loaded.as_of, config=config)
        seconds["score"] = time.perf_counter() - start
        start = time.perf_counter()
        with phases.phase("写出 writing"):
            table = score_table(loaded, scores, config)
            write_csv_atomic(table, out)
        seconds["write"] = time.perf_counter() - start
    bought = scores.n_orders > 0
    counts = np.bincount(scores.stage[bought].astype(np.int64), minlength=len(STAGES))
    return ScoreRun(
        loaded=loaded,
        scores=scores,
        out=out,
        n_written=table.num_rows,
        n_orders_used=used,
        stage_counts={name: int(counts[i]) for i, name in enumerate(STAGES)},
        seconds=seconds,
        config=config,
    )


def summary_lines(run: ScoreRun) -> list[str]:
    """The short report printed after scoring (Chinese, then English figures)."""
    loaded, priors = run.loaded, run.scores.priors
    skipped = loaded.n_customers - run.n_written
    lines = [
        f"文件 / file: {loaded.path}  ({_encoding(loaded)})",
        f"评估日 / as of: {loaded.as_of}   订单日期 / dates: {loaded.first_date} — "
        f"{loaded.last_date}",
        f"订单 / orders: {run.n_orders_used:,} 行用于评分 used"
        + (
            f",{loaded.n_after_as_of:,} 行晚于评估日未用 after as_of"
            if loaded.n_after_as_of
            else ""
        ),
        f"客户 / customers: {run.n_written:,}"
        + (f"(另 {skipped:,} 位只在评估日之后下单 / only after as_of)" if skipped else ""),
        "阶段 / stages: "
        + "  ".join(
            f"{STAGE_LABELS[name]} {name} {count:,}"
            for name, count in run.stage_counts.items()
            if count
        ),
        *stage_notes(run),
        "店铺参数 / shop priors: "
        f"平时间隔 usual interval {math.exp(priors.mu0):.1f} 天 days, "
        f"每单后流失概率 dropout/purchase {priors.dropout:.1%}, "
        f"客单 avg order {priors.aov:.2f}, "
        f"夏季 summer ×{priors.summer_rate:.2f}, 春节 festival ×{priors.festival_rate:.2f}, "
        f"校准 calibration a={priors.calib_a:.2f} b={priors.calib_b:.2f} c={priors.calib_c:.2f}",
        f"输出 / written: {run.out} ({run.n_written:,} 行 rows)",
        "用时 / time: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in run.seconds.items())
        + f", total {sum(run.seconds.values()):.1f}s",
    ]
    lines += [f"注意 / note: {p}" for p in loaded.problems]
    return lines


def stage_notes(run: ScoreRun) -> list[str]:
    """How stages and the churn probability relate, in the owner's words, with the money."""
    scores, config = run.scores, run.config
    bought = scores.n_orders > 0
    alerted = bought & np.isin(
        scores.stage, [STAGES.index(s) for s in ("quiet", "at_risk", "lost")]
    )
    at_risk_yuan = float(scores.value_at_risk[alerted].sum())
    lost = bought & (scores.stage == STAGES.index("lost"))
    hopeful = int(np.count_nonzero(lost & (scores.churn_probability < 0.5)))
    lines = [
        f"阶段怎么定:超过平时间隔 {config.quiet_ratio:g} 倍没订为需关注,{config.at_risk_ratio:g} 倍"
        f"有流失风险,{config.lost_ratio:g} 倍(且至少 {config.lost_min_days} 天)算已流失;"
        "对某位客户来说这么久没订已很反常时会提前。每位的原因见 stage_reason_zh 列。",
        f"流失概率是“接下来 {config.horizon_days} 天都不再下单”的可能,用来排先后,和阶段是两回事。",
        f"需关注、有流失风险和已流失的客户,风险金额合计 {at_risk_yuan:,.0f} 元。",
    ]
    if hopeful:
        lines.append(
            f"其中 {hopeful:,} 位按天数已算流失、流失概率却不到一半:"
            "像他们这样的客户过去常有回头的,值得先打个电话。"
        )
    return lines


def _encoding(loaded: LoadedOrders) -> str:
    return loaded.encoding.upper() if loaded.encoding else "xlsx"
