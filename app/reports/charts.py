"""The report as pictures: PNGs drawn server-side with matplotlib (Agg) and a CJK font.

matplotlib is imported on first use, not at start-up. Figures are built with the
object-oriented API (no pyplot, no global figure state). The font is Noto Sans CJK SC from
Debian's fonts-noto-cjk; without it Chinese labels would come out as boxes, so its absence
is an error, not a silent fallback.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.reports.metrics import ShopReport
from app.reports.wording import Labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FONT_DIR = Path("/usr/share/fonts/opentype/noto")
FONT_FILES = ("NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc")
FONT_FAMILY = "Noto Sans CJK SC"
# Colours: calm for what is fine, warm for what needs the owner.
AVOIDABLE = "#e4572e"
UNAVOIDABLE = "#a8a8a8"
MONTH_BAR = "#e4572e"
QUARTER_BAR = "#f3a712"
CONTACTED = "#9cc5e8"
RECOVERED = "#2e86ab"
MONEY = ("#e4572e", "#2e86ab", "#3bb273")
PROCESS = ("#3bb273", "#f3a712", "#9cc5e8", "#e4572e")
DASHBOARD_CHARTS = ("trend", "reasons", "winback", "process", "money")

_setup_lock = threading.Lock()
_ready = False


class ChartError(RuntimeError):
    """The chart cannot be drawn (the CJK font is missing)."""


def _setup() -> None:
    """Select the Agg backend and the CJK font, once per process."""
    global _ready
    with _setup_lock:
        if _ready:
            return
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import font_manager

        present = {f.name for f in font_manager.fontManager.ttflist}
        if FONT_FAMILY not in present:
            files = [FONT_DIR / name for name in FONT_FILES if (FONT_DIR / name).exists()]
            if not files:
                raise ChartError(f"CJK font not found in {FONT_DIR} (install fonts-noto-cjk)")
            for path in files:
                font_manager.fontManager.addfont(str(path))
        matplotlib.rcParams.update(
            {
                "font.family": "sans-serif",
                "font.sans-serif": [FONT_FAMILY],
                "axes.unicode_minus": False,
                "axes.spines.top": False,
                "axes.spines.right": False,
                "axes.titlesize": 13,
                "axes.titleweight": "bold",
                "font.size": 10.5,
            }
        )
        _ready = True


def _figure(width: float, height: float) -> Figure:
    _setup()
    from matplotlib.figure import Figure

    # Fixed margins: matplotlib's layout engines cost more than the drawing itself here.
    return Figure(figsize=(width, height), dpi=100)


def _png(figure: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _empty(ax: Axes, labels: Labels) -> None:
    ax.text(0.5, 0.5, labels["no_data"], ha="center", va="center", color="#888888")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)


def draw_trend(ax: Axes, report: ShopReport, labels: Labels) -> None:
    """Twelve months of churn: avoidable and moved/closed stacked, the rate on top."""
    months = report.trend
    x = list(range(len(months)))
    avoidable = [(m.avoidable_rate or 0.0) * 100 for m in months]
    unavoidable = [(m.unavoidable_rate or 0.0) * 100 for m in months]
    ax.bar(x, avoidable, color=AVOIDABLE, label=labels["avoidable"])
    ax.bar(x, unavoidable, bottom=avoidable, color=UNAVOIDABLE, label=labels["unavoidable"])
    top = max([a + u for a, u in zip(avoidable, unavoidable, strict=True)] + [1.0])
    for i, month in enumerate(months):
        ax.text(
            i,
            avoidable[i] + unavoidable[i] + top * 0.02,
            _percent(month.churn_rate),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(x, [labels.month(m.first_day) for m in months], fontsize=9)
    ax.set_ylim(0, top * 1.25)
    ax.set_ylabel(labels["rate_axis"])
    ax.set_title(labels["trend_title"], loc="left")
    ax.legend(loc="upper left", frameon=False, fontsize=9, ncols=2)


def draw_reasons(ax: Axes, report: ShopReport, labels: Labels) -> None:
    """Shares of loss reasons: this month next to this quarter."""
    month = {labels.reason(r.reason): r for r in report.reasons_month}
    quarter = {labels.reason(r.reason): r for r in report.reasons_quarter}
    names = list(dict.fromkeys([*quarter, *month]))
    if not names:
        _empty(ax, labels)
        ax.set_title(labels["reasons_title"], loc="left")
        return
    y = list(range(len(names)))
    height = 0.38
    month_shares = [month[n].share * 100 if n in month else 0.0 for n in names]
    quarter_shares = [quarter[n].share * 100 if n in quarter else 0.0 for n in names]
    ax.barh(
        [v - height / 2 for v in y],
        month_shares,
        height,
        color=MONTH_BAR,
        label=labels["this_month"],
    )
    ax.barh(
        [v + height / 2 for v in y],
        quarter_shares,
        height,
        color=QUARTER_BAR,
        label=labels["this_quarter"],
    )
    for i, name in enumerate(names):
        if name in month:
            ax.text(
                month_shares[i] + 1,
                i - height / 2,
                f"{month[name].count}{labels['people']}",
                va="center",
                fontsize=8,
            )
        if name in quarter:
            ax.text(
                quarter_shares[i] + 1,
                i + height / 2,
                f"{quarter[name].count}{labels['people']}",
                va="center",
                fontsize=8,
            )
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 115)
    ax.set_xlabel("%")
    ax.set_title(labels["reasons_title"], loc="left")
    ax.legend(loc="lower right", frameon=False, fontsize=9)


def draw_winback(ax: Axes, report: ShopReport, labels: Labels) -> None:
    """Per tier: customers contacted in the month and how many came back."""
    rows = report.by_tier
    if not rows:
        _empty(ax, labels)
        ax.set_title(labels["winback_title"], loc="left")
        return
    x = list(range(len(rows)))
    width = 0.38
    ax.bar(
        [v - width / 2 for v in x],
        [w.contacted for w in rows],
        width,
        color=CONTACTED,
        label=labels["contacted"],
    )
    ax.bar(
        [v + width / 2 for v in x],
        [w.recovered for w in rows],
        width,
        color=RECOVERED,
        label=labels["recovered"],
    )
    top = max(w.contacted for w in rows) or 1
    for i, w in enumerate(rows):
        ax.text(i, w.contacted + top * 0.04, _percent(w.rate), ha="center", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # people come in whole numbers
    ax.set_xticks(x, [labels.tier(w.key) for w in rows])
    ax.set_ylim(0, top * 1.3)
    ax.set_ylabel(labels["people"])
    ax.set_title(labels["winback_title"], loc="left")
    ax.legend(loc="upper right", frameon=False, fontsize=9)


def draw_money(ax: Axes, report: ShopReport, labels: Labels) -> None:
    """Offers spent against revenue recovered and the value of the customers saved."""
    money = report.money
    values = [
        money.offer_cost_cents / 100,
        money.revenue_recovered_cents / 100,
        money.clv_saved_cents / 100,
    ]
    names = [labels["cost"], labels["revenue"], labels["clv"]]
    if not any(values):
        _empty(ax, labels)
        ax.set_title(labels["money_title"], loc="left")
        return
    y = list(range(len(values)))
    ax.barh(y, values, color=list(MONEY))
    top = max(values)
    for i, value in enumerate(values):
        ax.text(value + top * 0.02, i, f"{value:,.0f}", va="center", fontsize=9)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.25)
    ax.set_title(labels["money_title"], loc="left")


def draw_process(ax: Axes, report: ShopReport, labels: Labels) -> None:
    """Warnings of the month by how fast they were answered (one stacked bar)."""
    p = report.process
    parts = [
        (labels["within"], p.within_48h),
        (labels["late"], p.late),
        (labels["waiting"], p.waiting),
        (labels["missed"], p.missed),
    ]
    if not p.warnings:
        _empty(ax, labels)
        ax.set_title(labels["process_title"], loc="left")
        return
    left = 0
    for (name, count), colour in zip(parts, PROCESS, strict=True):
        if count:
            ax.barh([0], [count], left=left, color=colour, label=f"{name} {count}")
            ax.text(
                left + count / 2,
                0,
                str(count),
                ha="center",
                va="center",
                color="white",
                fontsize=10,
                fontweight="bold",
            )
        left += count
    ax.set_xlim(0, p.warnings)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines["bottom"].set_visible(False)
    ax.set_title(labels["process_title"], loc="left")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncols=4, frameon=False, fontsize=9)


PANELS: dict[str, Callable[[Any, ShopReport, Labels], None]] = {
    "trend": draw_trend,
    "reasons": draw_reasons,
    "winback": draw_winback,
    "process": draw_process,
    "money": draw_money,
}
_HEIGHTS = {"trend": 3.0, "reasons": 2.8, "winback": 2.6, "process": 1.0, "money": 2.0}
# Inches below each panel on its own: tick labels, and the process legend under its bar.
_BOTTOM = {"trend": 0.45, "reasons": 0.6, "winback": 0.45, "process": 0.75, "money": 0.45}


def chart_png(report: ShopReport, labels: Labels, name: str, *, dpi: int = 150) -> bytes:
    """One panel as a PNG (the dashboard shows each on its own, full phone width)."""
    height = _HEIGHTS[name] + 0.4
    figure = _figure(6.4, height)
    figure.subplots_adjust(
        left=0.2, right=0.96, top=1 - 0.45 / height, bottom=_BOTTOM[name] / height
    )
    PANELS[name](figure.add_subplot(), report, labels)
    return _png(figure, dpi)


def report_png(report: ShopReport, labels: Labels, *, dpi: int = 120) -> bytes:
    """The chat picture: every panel stacked in one tall image, headed with shop and month."""
    names = list(PANELS)
    heights = [_HEIGHTS[n] for n in names]
    total = sum(heights) + 0.9 + 0.6 * len(names)
    figure = _figure(7.2, total)
    figure.subplots_adjust(
        left=0.2, right=0.96, top=1 - 0.95 / total, bottom=0.5 / total, hspace=0.55
    )
    axes = figure.subplots(len(names), 1, gridspec_kw={"height_ratios": heights})
    for name, ax in zip(names, axes, strict=True):
        PANELS[name](ax, report, labels)
    heading = str(labels["chart_heading"]).format(
        shop=report.shop_name, month=labels.month_long(report.month.first_day)
    )
    figure.suptitle(heading, fontsize=15, fontweight="bold", y=1 - 0.3 / total)
    return _png(figure, dpi)
