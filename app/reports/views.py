"""The owner's report dashboard on a phone: GET /r/{token}, read-only, behind a signed link.

The link names one shop and one month and expires (app/outreach/links.report_token); a
tampered, expired or other-purpose token is refused with the same page as the tap links.
Charts are PNGs drawn server-side (the same panels as the chat picture) and inlined as
data: URLs, so the page needs nothing from the network and nothing is cached.
"""

from __future__ import annotations

import base64
import logging
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.db import read_session
from app.deps import ClockDep, EngineDep, SettingsDep
from app.outreach.links import LinkError, link_secret, read_report
from app.pages import link_page, link_refused
from app.reports.charts import DASHBOARD_CHARTS, ChartError, chart_png
from app.reports.metrics import build_report
from app.reports.wording import report_labels
from app.shops.models import Shop

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


@router.get("/r/{token}", response_class=HTMLResponse)
def report_page(
    request: Request, token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> HTMLResponse:
    try:
        link = read_report(link_secret(settings), token, now=clock.now())
    except LinkError as exc:
        return link_refused(request, str(exc), 403)
    with read_session(engine) as session:
        shop = session.get(Shop, link.shop_id)
        if shop is None:
            return link_refused(request, "链接无效", 403)
        report = build_report(session=session, shop=shop, first_day=link.month, clock=clock)
        labels = report_labels(settings.templates_dir, shop)
    charts: dict[str, str | None] = dict.fromkeys(DASHBOARD_CHARTS)
    try:
        for name in DASHBOARD_CHARTS:
            png = chart_png(report, labels, name)
            charts[name] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    except ChartError as exc:  # no CJK font here: the figures below still tell it all
        log.warning("dashboard charts not drawn: %s", exc)
    return link_page(
        request,
        "report.html",
        {
            "r": report,
            "labels": labels,
            "charts": charts,
            "month_label": labels.month_long(report.month.first_day),
            "quarter_label": labels.quarter(*report.quarter),
            "expires": link.expires.astimezone(ZoneInfo(shop.timezone)),
        },
    )
