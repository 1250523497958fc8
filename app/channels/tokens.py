"""Provider access tokens shared by every process, and the retrying JSON API caller.

WeChat and WeCom give each app one live access token at a time (a new gettoken may cut the
old one short), so every process must use the same one: it lives in the `access_token`
table, one process refreshes it under a short lease while the others wait for it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, select

from app.channels.models import AccessToken
from app.channels.push import PushError, PushUnavailable
from app.clock import Clock, from_utc
from app.config import Settings
from app.db import insert_for, read_session, write_session

log = logging.getLogger(__name__)

# Refresh this long before the provider's expiry, so a token never dies mid-request.
EARLY_REFRESH = timedelta(minutes=5)
LEASE = timedelta(seconds=15)
# Token expired / invalid: refresh once and retry.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# The recipient is outside WeChat's 48-hour window, or the window's quota is used up, or
# no longer follows the account (43004).
UNREACHABLE_ERRORS = frozenset({45015, 45047, 43004})

# (http client, force) -> (token, expires_in seconds); raises PushError on failure.
TokenFetch = Callable[[httpx.Client, bool], tuple[str, int]]


class TokenStore:
    """One app's access token, read from the database and refreshed by one holder at a time."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        app_key: str,
        fetch: TokenFetch,
        http: httpx.Client,
        wait_step_seconds: float = 0.05,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.app_key = app_key
        self.fetch = fetch
        self.http = http
        self.wait_step_seconds = wait_step_seconds

    def _fresh(self, row: AccessToken | None) -> str | None:
        if row is None or not row.token or row.expires_at is None:
            return None
        if from_utc(row.expires_at) - EARLY_REFRESH <= self.clock.now():
            return None
        return row.token

    def get(self, *, stale: str | None = None) -> str:
        """A live token; `stale` names one the provider just refused, which must be replaced."""
        for _ in range(int(LEASE.total_seconds() / self.wait_step_seconds) + 1):
            with read_session(self.engine) as session:
                row = session.get(AccessToken, self.app_key)
                token = self._fresh(row)
            if token and token != stale:
                return token
            claimed, token = self._claim(stale)
            if token:
                return token
            if claimed:
                return self._refresh(force=stale is not None)
            time.sleep(self.wait_step_seconds)  # another process is refreshing it
        return self._refresh(force=stale is not None)

    def _claim(self, stale: str | None) -> tuple[bool, str | None]:
        """Take the refresh lease; or the token someone refreshed meanwhile."""
        now = self.clock.now()
        with write_session(self.engine) as session:
            # The first claim of an app creates its row. Two claimers at once (two pushes,
            # two processes) would both find none, and FOR UPDATE locks no missing row on
            # PostgreSQL: the second INSERT died on the key. Insert-if-missing, then lock.
            session.execute(
                insert_for(self.engine.dialect.name)(AccessToken)
                .values(app_key=self.app_key, token="", updated_at=now)
                .on_conflict_do_nothing(index_elements=["app_key"])
            )
            row = session.execute(
                select(AccessToken).where(AccessToken.app_key == self.app_key).with_for_update()  # type: ignore[arg-type]
            ).scalar_one()
            token = self._fresh(row)
            if token and token != stale:
                return False, token
            if row.refreshing_until is not None and from_utc(row.refreshing_until) > now:
                return False, None
            row.refreshing_until = now + LEASE
            if stale and row.token == stale:
                row.expires_at = now  # nobody else may hand it out any more
            session.add(row)
        return True, None

    def _refresh(self, *, force: bool) -> str:
        try:
            token, expires_in = self.fetch(self.http, force)
        except BaseException:
            with write_session(self.engine) as session:
                row = session.get(AccessToken, self.app_key)
                if row is not None:
                    row.refreshing_until = None
                    session.add(row)
            raise
        now = self.clock.now()
        with write_session(self.engine) as session:
            row = session.get(AccessToken, self.app_key) or AccessToken(
                app_key=self.app_key, updated_at=now
            )
            row.token = token
            row.expires_at = now + timedelta(seconds=expires_in)
            row.refreshing_until = None
            row.updated_at = now
            session.add(row)
        log.info("refreshed access token for %s", self.app_key)
        return token


def request_json(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    attempts: int = 4,
    backoff_seconds: float = 0.2,
    **kwargs: Any,
) -> dict[str, Any]:
    """One JSON call, retried with exponential backoff on transport errors and 5xx."""
    for attempt in range(attempts):
        try:
            response = http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            error: str = f"{type(exc).__name__}"
        else:
            if response.status_code < 500:
                if response.status_code >= 400:
                    raise PushError(f"HTTP {response.status_code} from {url.split('?')[0]}")
                try:
                    body = response.json()
                except ValueError as exc:
                    raise PushError("provider answered with something other than JSON") from exc
                if not isinstance(body, dict):
                    raise PushError("provider answered with a non-object")
                return body
            error = f"HTTP {response.status_code}"
        if attempt + 1 < attempts:
            time.sleep(backoff_seconds * (2**attempt))
    raise PushError(f"{error} from {url.split('?')[0]} after {attempts} attempts")


class WeChatApi:
    """WeChat/WeCom style calls: `?access_token=`, `errcode` in the body, token refresh."""

    def __init__(
        self, *, base: str, tokens: TokenStore, http: httpx.Client, backoff_seconds: float = 0.2
    ) -> None:
        self.base = base.rstrip("/")
        self.tokens = tokens
        self.http = http
        self.backoff_seconds = backoff_seconds

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST `payload`; refresh the token once on 40014/42001; 45015 -> PushUnavailable."""
        return self._with_token(
            lambda token: request_json(
                self.http,
                "POST",
                f"{self.base}{path}",
                params={"access_token": token},
                content=dumps(payload),
                headers={"Content-Type": "application/json; charset=utf-8"},
                backoff_seconds=self.backoff_seconds,
            ),
            unreachable_is_unavailable=True,
        )

    def get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """GET with `params` (a read: WeCom's contact lookups), the same token refresh."""
        return self._with_token(
            lambda token: request_json(
                self.http,
                "GET",
                f"{self.base}{path}",
                params={"access_token": token, **params},
                backoff_seconds=self.backoff_seconds,
            ),
            unreachable_is_unavailable=False,
        )

    def upload(
        self, path: str, *, params: dict[str, str], filename: str, content: bytes, mime: str
    ) -> dict[str, Any]:
        """A multipart upload (field `media`), with the same token refresh and error codes."""
        return self._with_token(
            lambda token: request_json(
                self.http,
                "POST",
                f"{self.base}{path}",
                params={"access_token": token, **params},
                files={"media": (filename, content, mime)},
                backoff_seconds=self.backoff_seconds,
            ),
            unreachable_is_unavailable=False,
        )

    def _with_token(
        self, call: Callable[[str], dict[str, Any]], *, unreachable_is_unavailable: bool
    ) -> dict[str, Any]:
        """`call(token)`, once more with a fresh token if the provider says it is stale."""
        stale: str | None = None
        for _ in range(2):
            token = self.tokens.get(stale=stale)
            body = call(token)
            code = int(body.get("errcode", 0) or 0)
            if code in TOKEN_ERRORS:
                stale = token
                continue
            if unreachable_is_unavailable and code in UNREACHABLE_ERRORS:
                raise PushUnavailable(f"{code} {body.get('errmsg', '')}")
            if code != 0:
                raise PushError(f"{code} {body.get('errmsg', '')}")
            return body
        raise PushError("access token refused twice")


class ApiClient:
    """What the WeCom and Official Account clients share: one HTTP client, the token kept in
    the database under the app's key, and WeChatApi calls. A subclass names its API base,
    its app key, and how a token is fetched."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        clock: Clock,
        http: httpx.Client | None = None,
        backoff_seconds: float = 0.2,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.base = self.api_base(settings).rstrip("/")
        self.http = http or httpx.Client(timeout=10.0)
        self.backoff_seconds = backoff_seconds
        self.tokens = TokenStore(
            engine=engine,
            clock=clock,
            app_key=self.app_key(settings),
            fetch=self._fetch_token,
            http=self.http,
        )
        self.api = WeChatApi(
            base=self.base, tokens=self.tokens, http=self.http, backoff_seconds=backoff_seconds
        )

    @staticmethod
    def api_base(settings: Settings) -> str:
        raise NotImplementedError

    @staticmethod
    def app_key(settings: Settings) -> str:
        raise NotImplementedError

    def _fetch_token(self, http: httpx.Client, force: bool) -> tuple[str, int]:
        raise NotImplementedError


def token_from(body: dict[str, Any], call: str) -> tuple[str, int]:
    """(access_token, expires_in) from a token call's body; PushError when it failed."""
    if int(body.get("errcode", 0) or 0) != 0 or not body.get("access_token"):
        raise PushError(f"{call} failed: {body.get('errcode')} {body.get('errmsg', '')}")
    return str(body["access_token"]), int(body.get("expires_in", 7200))


def dumps(payload: dict[str, Any]) -> bytes:
    """JSON as WeChat wants it: UTF-8 text, not \\u escapes (which it shows literally)."""
    return json.dumps(payload, ensure_ascii=False).encode()
