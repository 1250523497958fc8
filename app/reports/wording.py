"""The report's labels (chart titles, tier and reason names), read from message_templates.

They live in reports/labels.txt.j2 as one Jinja dict, so a shop or an industry pack rewords
them the same way as every message. Jinja reloads a changed file on its own; nothing here
is cached beyond that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from app.shops.models import Shop
from app.templating import environment, render_message

LABELS_TEMPLATE = "reports/labels.txt.j2"


@dataclass(frozen=True)
class Labels:
    """One shop's report labels with helpers for the names the data carries as codes."""

    raw: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def tier(self, tier: int | str) -> str:
        return str(self.raw["tiers"].get(int(tier), tier))

    def template(self, template: str) -> str:
        """outreach/tier2_call.txt.j2 -> 二级·电话 (a shop's own template by its file name)."""
        stem = template.rsplit("/", 1)[-1].split(".", 1)[0]
        return str(self.raw["templates"].get(stem, stem))

    def reason_code(self, code: str) -> str:
        return str(self.raw["reasons"].get(code, code))

    def reason(self, label: str | None) -> str:
        """A lost mark's reason as recorded (价格), or the word for "none recorded"."""
        return label if label else str(self.raw["reason_missing"])

    def month(self, day: date) -> str:
        return str(self.raw["month"]).format(m=day.month, y=day.year)

    def month_long(self, day: date) -> str:
        return str(self.raw["month_long"]).format(m=day.month, y=day.year)

    def quarter(self, year: int, quarter: int) -> str:
        return str(self.raw["quarter"]).format(y=year, q=quarter)


def report_labels(templates_dir: Path, shop: Shop) -> Labels:
    """The labels for this shop (its override, its industry pack, or the generic ones)."""
    env = environment(templates_dir, shop.industry, shop.slug)
    module = env.get_template(LABELS_TEMPLATE).make_module()
    return Labels(raw=dict(module.labels))  # type: ignore[attr-defined]


def render_report_text(templates_dir: Path, shop: Shop, name: str, /, **context: Any) -> str:
    """Render message_templates/<pack>/reports/<name>.txt.j2 for this shop."""
    return render_message(
        templates_dir, shop.industry, shop.slug, f"reports/{name}.txt.j2", shop=shop, **context
    )
