"""Web upload of an owner's spreadsheet: form → preview with a one-time token → import.

Guarded like the web chat (app/web/access.py): signed in as the shop's owner or manager, or
local without a sign-in. The uploaded file
waits in `<data_dir>/imports/` under the hash of its one-time token: confirming needs the
token, which only the preview page shows, so a page on another site that posts a file here
cannot also make it be written; the token works once and for 30 minutes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.config import Settings
from app.dataio.imports import ImportPlan, analyse_import, write_import
from app.dataio.read import MAX_FILE_BYTES, Source
from app.dataio.report import preview_context, render_done, render_preview
from app.db import read_session, write_session
from app.deps import ClockDep, EngineDep, SettingsDep
from app.shops.models import Shop
from app.web.access import Owner, OwnerDep, OwnerRefused

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TOKEN_TTL_SECONDS = 30 * 60
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
ALLOWED_SUFFIXES = (".xlsx", ".xlsm", ".csv", ".txt")

router = APIRouter()
# Importing adds customers and orders by the thousand: not for a delivery worker's login.
IMPORT_ROLES = ("owner", "manager")


def _staging(settings: Settings) -> Path:
    path = settings.data_dir / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _token_key(token: str) -> str:
    # Only the hash is on disk: a directory listing does not hand out valid tokens.
    return hashlib.sha256(token.encode()).hexdigest()


def _shop(engine: Any, owner: Owner) -> Shop:
    if owner.session is not None and owner.session.role not in IMPORT_ROLES:
        raise OwnerRefused(403, "导入表格只有店主或店长能做,请让店主登录网页版后导入。")
    with read_session(engine) as session:
        shop = session.get(Shop, owner.shop_id)
    if shop is None:
        raise HTTPException(status_code=404, detail="没有这个店铺")
    return shop


def _sweep(staging: Path) -> None:
    """Remove staged uploads whose token has expired."""
    cutoff = time.time() - TOKEN_TTL_SECONDS
    for path in staging.iterdir():
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def _page(request: Request, shop: Shop, status: int = 200, **context: Any) -> HTMLResponse:
    base = {
        "shop_name": shop.name,
        "shop_slug": shop.slug,
        "action": f"/import/{shop.slug}",
        "confirm_action": f"/import/{shop.slug}/confirm",
        "chat_url": f"/chat/{shop.slug}",
        "preview": None,
        "summary": None,
        "token": None,
        "error": None,
        "done": None,
        "max_mb": MAX_FILE_BYTES >> 20,
    }
    return TEMPLATES.TemplateResponse(
        request, "import.html", {**base, **context}, status_code=status
    )


@router.get("/import/{slug}", response_class=HTMLResponse)
def import_form(request: Request, owner: OwnerDep, engine: EngineDep) -> HTMLResponse:
    return _page(request, _shop(engine, owner))


@router.post("/import/{slug}", response_class=HTMLResponse)
def import_upload(
    request: Request,
    owner: OwnerDep,
    file: Annotated[UploadFile, File()],
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> HTMLResponse:
    shop = _shop(engine, owner)
    name = Path(file.filename or "upload").name[:120] or "upload"
    suffix = Path(name).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        return _page(
            request, shop, 400, error="请上传 .xlsx 或 .csv 文件(旧版 .xls 请先另存为 .xlsx)。"
        )
    staging = _staging(settings)
    _sweep(staging)
    token = secrets.token_urlsafe(24)
    key = _token_key(token)
    path = staging / f"{key}{suffix}"
    size = 0
    with path.open("wb") as handle:
        while chunk := file.file.read(1 << 20):
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                handle.close()
                path.unlink(missing_ok=True)
                return _page(
                    request,
                    shop,
                    413,
                    error=f"文件太大,一次最多导入 {MAX_FILE_BYTES >> 20} MB。可按年份拆开再导入。",
                )
            handle.write(chunk)
    with read_session(engine) as session:
        plan = analyse_import(session=session, shop=shop, source=Source(path, name), clock=clock)
    ready = plan.accepted and plan.already_imported_at is None
    if ready:
        meta = {"shop_id": shop.id, "name": name, "sha256": plan.sha256, "suffix": suffix}
        (staging / f"{key}.json").write_text(json.dumps(meta), encoding="utf-8")
    else:
        path.unlink(missing_ok=True)
    return _page(
        request,
        shop,
        200 if plan.accepted else 422,
        preview=render_preview(plan, shop=shop, templates_dir=settings.templates_dir),
        summary=_summary(plan, shop),
        token=token if ready else None,
    )


def _summary(plan: ImportPlan, shop: Shop) -> dict[str, Any]:
    context = preview_context(plan, shop=shop)
    return {"accepted": plan.accepted, "issues": context["issues"], "rows": context["rows"]}


@router.post("/import/{slug}/confirm", response_class=HTMLResponse)
def import_confirm(
    request: Request,
    owner: OwnerDep,
    token: Annotated[str, Form()],
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> HTMLResponse:
    shop = _shop(engine, owner)
    expired = "这个确认链接已经用过或过期了,请重新上传文件。"
    if not _TOKEN.match(token):
        return _page(request, shop, 400, error=expired)
    staging = _staging(settings)
    key = _token_key(token)
    meta_path = staging / f"{key}.json"
    claimed = staging / f"{key}.claimed"
    try:
        # rename is atomic: of two clicks on "确认导入", exactly one gets the file.
        meta_path.rename(claimed)
    except OSError:
        return _page(request, shop, 410, error=expired)
    try:
        meta = json.loads(claimed.read_text(encoding="utf-8"))
        path = staging / f"{key}{meta['suffix']}"
        too_old = time.time() - claimed.stat().st_mtime > TOKEN_TTL_SECONDS
        if meta.get("shop_id") != shop.id or too_old or not path.exists():
            return _page(request, shop, 410, error=expired)
        with write_session(engine) as session:
            own = session.get(Shop, shop.id)
            assert own is not None
            plan = analyse_import(
                session=session, shop=own, source=Source(path, meta["name"]), clock=clock
            )
            if plan.sha256 != meta["sha256"] or not plan.accepted or plan.already_imported_at:
                return _page(
                    request,
                    shop,
                    409 if not plan.accepted else 200,
                    preview=render_preview(plan, shop=shop, templates_dir=settings.templates_dir),
                    summary=_summary(plan, shop),
                )
            result = write_import(session=session, shop=own, plan=plan, clock=clock)
        return _page(
            request, shop, done=render_done(result, shop=shop, templates_dir=settings.templates_dir)
        )
    finally:
        claimed.unlink(missing_ok=True)
        for leftover in staging.glob(f"{key}.*"):
            leftover.unlink(missing_ok=True)
