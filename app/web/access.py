"""Who may use the owner pages (web chat, upload page), and as whom.

Two ways in, checked on every request:
- **Signed in**: a session cookie opened by a one-time 登录网页版 link acts as that person,
  for that shop only.
- **Local**: without a session, the pages answer as the shop's owner only when nothing but
  this machine can reach them: the server listens on loopback alone, its public URL is
  loopback too (a deployment sets it to the address phones reach), the request carries no
  proxy header (a proxy on this machine forwards strangers from loopback), and its Host is
  a loopback name (a DNS-rebinding page in the owner's browser names its own host).
Anything else gets a Chinese page saying how to sign in (the JSON API: 401), never data.

State-changing requests must come from our own pages: a cross-site Sec-Fetch-Site or an
Origin/Referer naming another host is refused (403). Signed-in requests must name their
origin; the session cookie is SameSite=Lax as well, so other sites' forms never carry it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, Request

from app.channels.local import shop_and_owner
from app.config import Settings
from app.deps import ClockDep, EngineDep, SettingsDep
from app.shops.service import ShopError
from app.shops.websessions import COOKIE_NAME, SignedIn, signed_in

PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

OwnerPagesMode = Literal["off", "local", "signin"]

SIGNIN_NEEDED = "网页版需要先登录:在微信里给回头客助手发「登录网页版」,点回复里的链接。"
SIGNED_OUT = "网页版已退出或登录已过期:在微信里发「登录网页版」,点回复里的链接重新登录。"
OTHER_SHOP = "这个网页版登录的是另一家店,看不了这家店。要换店,请用这家店的微信发「登录网页版」。"
CROSS_SITE = "请求不是从回头客自己的页面发出的,已拒绝。请直接打开网页版再操作。"


class OwnerRefused(Exception):
    """An owner page refused: shown as a Chinese page, or {"detail"} on the JSON API."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Owner:
    """Whom an owner page acts as: one person (owner or staff) of one shop."""

    shop_id: int
    shop_slug: str
    staff_id: int
    # None when the request is local (no sign-in): the shop's owner.
    session: SignedIn | None


def is_loopback(host: str | None) -> bool:
    """Whether a host name or address is this machine only (localhost, 127.0.0.0/8, ::1)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def owner_pages_mode(settings: Settings) -> OwnerPagesMode:
    """off: webchat disabled; local: loopback answers without sign-in; signin: always sign in."""
    if not settings.webchat_enabled:
        return "off"
    if is_loopback(settings.host) and is_loopback(urlsplit(settings.public_url).hostname):
        return "local"
    return "signin"


def describe_mode(settings: Settings) -> str:
    """One line for the start-up log: which mode the owner pages are in, and why."""
    mode = owner_pages_mode(settings)
    if mode == "off":
        return "owner pages (web chat, upload): off (HUITOU_WEBCHAT_ENABLED=false)"
    if mode == "local":
        return (
            f"owner pages (web chat, upload): local, no sign-in for requests from this machine "
            f"(listening on {settings.host}); proxied or remote requests need 登录网页版"
        )
    return (
        f"owner pages (web chat, upload): sign-in required (listening on {settings.host}, "
        f"public URL {settings.public_url}); owners send 登录网页版 in WeChat"
    )


def _host_of(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return urlsplit(value if "//" in value else f"//{value}").hostname
    except ValueError:
        return None


def request_is_local(request: Request, settings: Settings) -> bool:
    """A request that can only have come from this machine (see the module docstring)."""
    if owner_pages_mode(settings) != "local":
        return False
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    return is_loopback(_host_of(request.headers.get("host")))


def _netloc(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def check_origin(request: Request, settings: Settings, *, required: bool) -> None:
    """Refuse a state-changing request that another site's page sent (CSRF)."""
    if request.method in SAFE_METHODS:
        return
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise OwnerRefused(403, CROSS_SITE)
    ours = {
        netloc
        for netloc in (
            (request.headers.get("host") or "").lower() or None,
            _netloc(settings.public_url),
        )
        if netloc
    }
    origin = request.headers.get("origin")
    if origin is not None:
        if _netloc(origin) not in ours:
            raise OwnerRefused(403, CROSS_SITE)
        return
    referer = request.headers.get("referer")
    if referer is not None:
        if _netloc(referer) not in ours:
            raise OwnerRefused(403, CROSS_SITE)
        return
    if required:
        raise OwnerRefused(403, CROSS_SITE)


def current_session(request: Request, engine: EngineDep, clock: ClockDep) -> SignedIn | None:
    """The signed-in person of this browser, if its cookie is a live session."""
    return signed_in(engine=engine, cookie=request.cookies.get(COOKIE_NAME), clock=clock)


SessionDep = Annotated[SignedIn | None, Depends(current_session)]


def require_owner(
    request: Request, slug: str, engine: EngineDep, settings: SettingsDep, session: SessionDep
) -> Owner:
    """The person an owner page for shop `slug` acts as; OwnerRefused when nobody may."""
    if not settings.webchat_enabled:
        raise OwnerRefused(404, "网页聊天未开启")
    if session is not None:
        check_origin(request, settings, required=True)
        if slug not in (session.shop_slug, str(session.shop_id)):
            raise OwnerRefused(403, OTHER_SHOP)
        return Owner(
            shop_id=session.shop_id,
            shop_slug=session.shop_slug,
            staff_id=session.staff_id,
            session=session,
        )
    if not request_is_local(request, settings):
        cookie = request.cookies.get(COOKIE_NAME)
        raise OwnerRefused(401, SIGNED_OUT if cookie else SIGNIN_NEEDED)
    check_origin(request, settings, required=False)
    try:
        shop_id, shop_slug, owner_id = shop_and_owner(engine, slug)
    except ShopError as exc:
        raise OwnerRefused(404, str(exc)) from exc
    return Owner(shop_id=shop_id, shop_slug=shop_slug, staff_id=owner_id, session=None)


OwnerDep = Annotated[Owner, Depends(require_owner)]
