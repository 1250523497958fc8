"""The server-rendered pages' shared pieces (app/web/templates): the templates and the page
behind a signed link, used by the web chat's sign-in, the tap and list pages (outreach) and
the report page (reports), so those domains need not import the web views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "web" / "templates"))


def link_page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A page behind a signed link (tap, full list, report): never cached (the back button
    must not bring a used form back) and never sent on as a Referer (the URL is the
    credential)."""
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def link_refused(
    request: Request, message: str, status: int, note: str | None = None
) -> HTMLResponse:
    """The same refusal page for every kind of link: forged, expired, used, another shop's.

    `note` replaces the hint under it (about the morning digest); "" shows none."""
    context: dict[str, Any] = {"message": message}
    if note is not None:
        context["note"] = note
    return link_page(request, "link_error.html", context, status_code=status)
