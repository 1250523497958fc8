"""Web routes: the local web chat page and its JSON endpoint, health."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import Engine, text

from app.bot.context import capture_side_output
from app.channels.local import deliver_as_owner
from app.clock import Clock
from app.config import Settings
from app.db import read_session
from app.reports.charts import ChartError
from app.shops.service import ShopError, get_shop, list_shops

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
SUGGESTIONS = ["今天该跟进谁", "王姐 2桶", "王姐", "帮助"]

log = logging.getLogger(__name__)
router = APIRouter()


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


def link_refused(request: Request, message: str, status: int) -> HTMLResponse:
    """The same refusal page for every kind of link: forged, expired, used, another shop's."""
    return link_page(request, "link_error.html", {"message": message}, status_code=status)


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]


def require_webchat(settings: SettingsDep) -> None:
    """The local web chat acts as the owner without a login: off unless enabled."""
    if not settings.webchat_enabled:
        raise HTTPException(status_code=404, detail="网页聊天未开启")


WebchatDep = Depends(require_webchat)


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


@router.get("/", include_in_schema=False, dependencies=[WebchatDep])
def index(engine: EngineDep) -> RedirectResponse:
    with read_session(engine) as session:
        shops = list_shops(session=session)
    if not shops:
        raise HTTPException(
            status_code=404, detail="还没有店铺:运行 huitou demo 或 huitou shop create"
        )
    slug = next((s.slug for s in shops if s.slug == "demo"), shops[0].slug)
    return RedirectResponse(url=f"/chat/{slug}", status_code=307)


@router.get("/chat/{slug}", response_class=HTMLResponse, dependencies=[WebchatDep])
def chat_page(request: Request, slug: str, engine: EngineDep) -> HTMLResponse:
    with read_session(engine) as session:
        try:
            shop = get_shop(session=session, ref=slug)
        except ShopError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
    return TEMPLATES.TemplateResponse(
        request,
        "chat.html",
        {
            "shop_name": shop.name,
            "shop_slug": shop.slug,
            "api_url": f"/api/chat/{shop.slug}",
            "suggestions": SUGGESTIONS,
            "static_url": "/static",
        },
    )


@router.post("/api/chat/{slug}", dependencies=[WebchatDep])
def chat_api(
    slug: str, body: ChatIn, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> ChatOut:
    try:
        with capture_side_output(settings) as side:
            result = deliver_as_owner(
                engine=engine,
                settings=settings,
                clock=clock,
                shop_ref=slug,
                channel="web",
                text=body.text,
                client_msg_id=body.client_msg_id,
            )
    except ShopError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except PermissionError as exc:
        raise HTTPException(status_code=409, detail="消息编号冲突,请重新发送") from exc
    # Drawn here, after the message's transaction committed (ChatImage.png is lazy). A
    # machine without the CJK font gets no picture; the reply already carries the link.
    images = []
    for image in side.images:
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
        duplicate=result.duplicate,
    )
