"""Web routes: the web chat page and its JSON endpoint, signing in to it, health."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlmodel import Session

from app.channels.local import deliver_as
from app.clock import Clock
from app.config import Settings
from app.db import read_session, write_session
from app.deps import ClockDep, EngineDep, SettingsDep
from app.outreach.links import LinkError, SigninLink, link_secret, read_signin
from app.pages import TEMPLATES, link_page, link_refused
from app.reports.charts import ChartError
from app.shops.models import Shop, Staff
from app.shops.service import LOCAL_OWNER_ID, list_shops
from app.shops.websessions import COOKIE_NAME, nonce_used, open_session
from app.web.access import (
    SIGNIN_NEEDED,
    OwnerDep,
    OwnerRefused,
    SessionDep,
    check_origin,
    request_is_local,
)

SUGGESTIONS = ["今天该跟进谁", "王姐 2桶", "王姐", "帮助"]
USED = "这个登录链接已经用过了。请在微信里重新发「登录网页版」,用新的链接。"
ASK_AGAIN = ",请在微信里重新发「登录网页版」"

log = logging.getLogger(__name__)
router = APIRouter()


def signin_refused(request: Request, message: str, status: int) -> HTMLResponse:
    """A sign-in link that cannot be used: the message says how to get a new one."""
    return link_refused(request, message, status, note="")


class ChatIn(BaseModel):
    text: str = Field(max_length=2000)
    client_msg_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class ChatReply(BaseModel):
    text: str


class ChatImageOut(BaseModel):
    """A picture the bot sent (a report chart), inline as a data: URL."""

    data_url: str
    alt: str
    filename: str


class ChatOut(BaseModel):
    replies: list[ChatReply]
    # Pictures follow the replies; a repeated delivery replays the texts only.
    images: list[ChatImageOut] = []
    duplicate: bool = False


@router.get("/healthz")
def healthz(engine: EngineDep) -> dict[str, str]:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}


def owner_refused(request: Request, exc: Exception) -> Response:
    """An owner page refused (OwnerRefused): JSON {"detail"} on the API, else a Chinese page
    saying how to sign in. Registered as the app's handler for OwnerRefused."""
    assert isinstance(exc, OwnerRefused)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
    if exc.status == 404:
        response = TEMPLATES.TemplateResponse(
            request, "link_error.html", {"message": exc.message, "note": ""}, status_code=404
        )
    else:
        minutes = request.app.state.settings.web_signin_minutes
        response = TEMPLATES.TemplateResponse(
            request,
            "signin_needed.html",
            {"message": exc.message, "minutes": minutes},
            status_code=exc.status,
        )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/", include_in_schema=False)
def index(
    request: Request, engine: EngineDep, settings: SettingsDep, session: SessionDep
) -> RedirectResponse:
    if not settings.webchat_enabled:
        raise HTTPException(status_code=404, detail="网页聊天未开启")
    if session is not None:
        return RedirectResponse(url=f"/chat/{session.shop_slug}", status_code=303)
    if not request_is_local(request, settings):
        raise OwnerRefused(401, SIGNIN_NEEDED)
    with read_session(engine) as db:
        shops = list_shops(session=db)
    if not shops:
        raise HTTPException(
            status_code=404, detail="还没有店铺:运行 huitou demo 或 huitou shop create"
        )
    slug = next((s.slug for s in shops if s.slug == "demo"), shops[0].slug)
    return RedirectResponse(url=f"/chat/{slug}", status_code=307)


@router.get("/chat/{slug}", response_class=HTMLResponse)
def chat_page(request: Request, owner: OwnerDep, engine: EngineDep) -> HTMLResponse:
    with read_session(engine) as db:
        shop = db.get(Shop, owner.shop_id)
        staff = db.get(Staff, owner.staff_id)
    assert shop is not None and staff is not None
    response = TEMPLATES.TemplateResponse(
        request,
        "chat.html",
        {
            "shop_name": shop.name,
            "shop_slug": shop.slug,
            "api_url": f"/api/chat/{shop.slug}",
            "suggestions": SUGGESTIONS,
            "static_url": "/static",
            # Shown in the title bar when signed in, so a shared computer says whose it is.
            "person": staff.name if owner.session is not None else None,
        },
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/api/chat/{slug}")
def chat_api(
    body: ChatIn, owner: OwnerDep, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> ChatOut:
    if owner.session is None:
        sender_key = f"local:{owner.shop_id}:{LOCAL_OWNER_ID}"
    else:
        sender_key = f"web:{owner.shop_id}:{owner.staff_id}"
    try:
        result = deliver_as(
            engine=engine,
            settings=settings,
            clock=clock,
            shop_id=owner.shop_id,
            staff_id=owner.staff_id,
            sender_key=sender_key,
            channel="web",
            text=body.text,
            client_msg_id=body.client_msg_id,
        )
    except PermissionError as exc:
        raise HTTPException(status_code=409, detail="消息编号冲突,请重新发送") from exc
    # Drawn here, after the message's transaction committed (ChatImage.png is lazy). A
    # machine without the CJK font gets no picture; the reply already carries the link.
    images = []
    for image in result.images:
        try:
            png = image.png
        except ChartError as exc:
            log.warning("chart not drawn: %s", exc)
            continue
        images.append(
            ChatImageOut(
                data_url="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
                alt=image.alt,
                filename=image.filename,
            )
        )
    return ChatOut(
        replies=[ChatReply(text=r) for r in result.replies],
        images=images,
        duplicate=not result.fresh,
    )


def _signin_link(token: str, settings: Settings, clock: Clock) -> SigninLink:
    """The sign-in link `token` is; OwnerRefused when it is forged, damaged or expired."""
    if not settings.webchat_enabled:
        raise HTTPException(status_code=404, detail="网页聊天未开启")
    try:
        return read_signin(link_secret(settings), token, now=clock.now())
    except LinkError as exc:
        raise OwnerRefused(403, f"{exc}{ASK_AGAIN}") from exc


def _person(db: Session, link: SigninLink) -> tuple[Shop, Staff]:
    """The shop and person a link names; OwnerRefused unless that person works there."""
    shop = db.get(Shop, link.shop_id)
    staff = db.get(Staff, link.staff_id)
    if shop is None or staff is None or staff.shop_id != shop.id:
        raise OwnerRefused(403, f"链接无效{ASK_AGAIN}")
    return shop, staff


# Opening a sign-in link shows a button; only the POST signs in. A link preview or a
# security scanner that fetches the URL (GET) must not use up the one-time link.
@router.get("/login/{token}", response_class=HTMLResponse, include_in_schema=False)
def signin_page(
    request: Request, token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> HTMLResponse:
    try:
        link = _signin_link(token, settings, clock)
        with read_session(engine) as db:
            shop, staff = _person(db, link)
            if nonce_used(session=db, login_nonce=link.nonce):
                raise OwnerRefused(410, USED)
    except OwnerRefused as exc:
        return signin_refused(request, exc.message, exc.status)
    response = link_page(
        request,
        "signin.html",
        {"shop_name": shop.name, "person": staff.name, "action": f"/login/{token}"},
    )
    # The button's POST must carry our Origin (checked); "no-referrer" would make it "null".
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@router.post("/login/{token}", include_in_schema=False)
def signin(
    request: Request, token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> Response:
    ttl = timedelta(days=settings.web_session_days)
    try:
        link = _signin_link(token, settings, clock)
        check_origin(request, settings, required=True)
        with write_session(engine) as db:
            shop, _ = _person(db, link)
            cookie = open_session(
                session=db,
                shop_id=link.shop_id,
                staff_id=link.staff_id,
                login_nonce=link.nonce,
                clock=clock,
                ttl=ttl,
            )
            if cookie is None:
                raise OwnerRefused(410, USED)
    except OwnerRefused as exc:
        return signin_refused(request, exc.message, exc.status)
    log.info("web chat signed in: shop %s, staff %s", link.shop_id, link.staff_id)
    response = RedirectResponse(url=f"/chat/{shop.slug}", status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        max_age=int(ttl.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.public_url.lower().startswith("https://"),
    )
    response.headers["Cache-Control"] = "no-store"
    return response
