"""The owner's view of an import: the preview and validation report, and the result."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from app.dataio.cells import FIELD_LABELS
from app.dataio.imports import ImportPlan, ImportResult
from app.shops.models import Shop
from app.templating import render_message


def _long_date(day: date | None) -> str:
    return f"{day.year}年{day.month}月{day.day}日" if day else ""


def preview_context(plan: ImportPlan, *, shop: Shop) -> dict[str, Any]:
    """Everything the preview template shows, as plain values."""
    columns = plan.columns
    mapped = (
        ",".join(f"{FIELD_LABELS[f]} ← “{h}”" for f, h in columns.headers.items())
        if columns
        else ""
    )
    if plan.format == "xlsx":
        format_label = "Excel" + (f",工作表 {plan.sheet}" if plan.sheet else "")
    else:
        format_label = f"CSV,{plan.encoding} 编码"
    return {
        "file": plan.source_name,
        "rejected": plan.rejected,
        "issue_count": plan.issue_count,
        "issues": [issue.describe() for issue in plan.issues],
        "more_issues": plan.issue_count - len(plan.issues),
        "already_imported_on": (
            plan.already_imported_at.astimezone(ZoneInfo(shop.timezone)).date()
            if plan.already_imported_at
            else None
        ),
        "format_label": format_label,
        "mapped": mapped,
        "ignored": "、".join(columns.ignored) if columns else "",
        "notes": columns.notes if columns else [],
        "rows": plan.rows_read,
        "has_orders": plan.has_orders,
        "order_rows": plan.order_rows,
        "first_day": _long_date(plan.first_day),
        "last_day": _long_date(plan.last_day),
        "customers": len(plan.people),
        "new_customers": len(plan.new_customers),
        "existing_customers": plan.existing_customers,
        "skipped": plan.skipped_existing,
        "orders_to_add": plan.orders_to_add,
        "first_rows": plan.first_rows,
        "unit": str(shop.settings.get("unit", "桶")),
    }


def render_preview(plan: ImportPlan, *, shop: Shop, templates_dir: Path) -> str:
    """The preview (or the reasons the file was refused), as chat/CLI text."""
    return render_message(
        templates_dir,
        shop.industry,
        shop.slug,
        "dataio/import_preview.txt.j2",
        **preview_context(plan, shop=shop),
    )


def render_done(result: ImportResult, *, shop: Shop, templates_dir: Path) -> str:
    """What the import wrote."""
    return render_message(
        templates_dir,
        shop.industry,
        shop.slug,
        "dataio/import_done.txt.j2",
        customers_added=result.customers_added,
        orders_added=result.orders_added,
        skipped=result.plan.skipped_existing,
    )
