"""Settings from the environment (HUITOU_*); nothing secret lives in the repo."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Process-wide configuration; every field maps to HUITOU_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="HUITOU_", env_file=None, extra="ignore")

    data_dir: Path = Field(default=PROJECT_ROOT / "data")
    # Empty means the embedded default: SQLite under data_dir.
    database_url: str = ""
    timezone: str = "Asia/Shanghai"
    host: str = "127.0.0.1"
    port: int = 8000
    templates_dir: Path = Field(default=PROJECT_ROOT / "message_templates")
    # Load the demo shop when the database holds no shop at all.
    demo_on_empty: bool = True
    # Load it with six months of use lived day by day (digests, answers, win-backs; about
    # half a minute), so reports show real figures on first start; false: its orders only.
    demo_past: bool = True
    # The web chat and upload page (owner pages). Without a sign-in they answer only when the
    # server listens on loopback alone, the public URL is loopback too, and the request came
    # straight from this machine (no proxy header); otherwise they require a session opened
    # by a one-time link (登录网页版 in WeChat or `huitou chat 登录网页版`). app/web/access.py.
    webchat_enabled: bool = True
    # Minutes a 登录网页版 link stays usable (once), and days a signed-in browser stays in.
    web_signin_minutes: int = 10
    web_session_days: int = 30
    # Freeze "today" (YYYY-MM-DD) for demos and reproducible screenshots.
    today: date | None = None
    # Seconds a pending question (e.g. "create this customer?") stays answerable.
    pending_ttl_seconds: int = 600
    # Signs tap and digest links. Empty: a random key is made once and kept in data_dir
    # (fine for one machine; set it explicitly when several machines serve the same shops).
    secret_key: str = ""
    # Where links in pushed messages point (the address owners' phones can reach).
    public_url: str = "http://127.0.0.1:8000"
    # How long a tap link in a digest stays usable.
    link_ttl_hours: int = 72
    # Run the morning digests in this process (APScheduler); off for one-off CLI processes.
    scheduler_enabled: bool = True
    # The digest hour for shops that did not choose one (HH:MM, shop's timezone).
    digest_time: str = "08:00"
    # Also push digests as JSON to this URL (with an Idempotency-Key header); empty: off.
    push_webhook_url: str = ""
    # How long a process's claim on a digest run lasts without renewal; a dead sender's
    # run is taken over after this (renewed before every push).
    digest_lease_seconds: int = 120

    # Real channels (app/channels/). An empty value switches that channel off; an empty
    # token or key disables its callback endpoint (404), it never verifies "anything".
    # The *_api_base fields let tests and staging point a channel at a fake provider.
    wecom_corp_id: str = ""
    wecom_agent_id: str = ""
    wecom_secret: str = ""
    wecom_token: str = ""
    wecom_aes_key: str = ""
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    wechat_token: str = ""
    # Set: safe mode (AES). Empty: plain mode (signature only).
    wechat_aes_key: str = ""
    wechat_api_base: str = "https://api.weixin.qq.com"
    # Verified service accounts only: a template message (the approved template's id) sends
    # the digest when the 48-hour customer-service window is closed (45015), before SMS.
    # Empty: straight to SMS. Fields: template keyword = value, comma-separated; values:
    # title (今天该跟进 3 位), count, names (王姐、老李…), date (6月17日), shop, hint.
    # Keywords named thing* are cut to WeChat's 20 characters.
    wechat_template_id: str = ""
    wechat_template_fields: str = "first=title,keyword1=names,keyword2=date,remark=hint"
    # Seconds the Official Account callback waits for the bot before answering "success"
    # and sending the reply later through the customer-service API (WeChat allows 5).
    wechat_reply_budget_seconds: float = 4.0
    # Threads that run the bot for WeChat/WeCom callbacks. The work is CPU-bound Python
    # (one GIL): a few threads take requests in arrival order, where many would share the
    # CPU among all of them and stretch every reply. 2 against 4: p99 lower in 7 of 7
    # alternating pairs on SQLite, equal on PostgreSQL (docs/channels.md). A slow command
    # holds one of them; past the reply budget its answer is pushed later.
    channel_threads: int = 2
    # FastAPI's built-in OpenTelemetry (spans, request metrics, error logs) for an operator
    # who runs an OTel SDK with exporters. Off by default: with no provider configured it
    # exports nothing, yet asks the global providers on every request.
    otel_enabled: bool = False
    # SMS: "tencent" (TC3-HMAC-SHA256 signed SendSms), "aliyun" (ACS3-HMAC-SHA256 signed
    # SendSms) or empty (off). secret_id / secret_key: Tencent's SecretId / SecretKey, or
    # Aliyun's AccessKey ID / AccessKey secret.
    sms_provider: str = ""
    sms_secret_id: str = ""
    sms_secret_key: str = ""
    sms_sdk_app_id: str = ""
    sms_region: str = "ap-guangzhou"
    sms_sign_name: str = ""
    # Approved templates. The digest link lives inside the approved template text: a URL
    # cannot be a template variable. The digest template takes {1} = how many to follow up.
    sms_digest_template_id: str = ""
    # Tier-1 outreach to a customer without WeChat: {1} = shop name (owner-confirmed).
    sms_outreach_template_id: str = ""
    # Left at this default with provider "aliyun": https://dysmsapi.aliyuncs.com.
    sms_api_base: str = "https://sms.tencentcloudapi.com"
    # Per phone number: at most this many texts per rolling hour and per rolling day.
    sms_max_per_hour: int = 1
    sms_max_per_day: int = 3
    # Secret path segment of the SMS reply callback (/sms/reply/<token>) where the provider
    # posts customers' replies, so opt-out words (退订, TD) are honoured. Empty: no endpoint.
    sms_callback_token: str = ""
    # Seconds between rounds of the sender of owner-confirmed texts (发短信); it is also
    # woken as soon as a confirmation commits (app/channels/sms_queue.py).
    sms_queue_seconds: float = 5.0
    # Seconds either side of "now" a signed callback's timestamp may be (replay window).
    callback_window_seconds: int = 300
    # Largest callback body accepted, in bytes.
    callback_max_bytes: int = 64 * 1024
    # SQLite only. NORMAL (WAL): a commit survives a killed process; an OS crash or power cut
    # may take back the last few. FULL: an fsync per commit, durable through a power cut,
    # ~3.5 ms more per write on this disk (app/db.py).
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # Per-sender limit on the WeCom/Official Account callbacks (per process): a burst of
    # this many messages, refilled at callback_sender_per_minute. Over it, one notice,
    # then messages are dropped until the bucket refills.
    callback_sender_burst: int = 20
    callback_sender_per_minute: float = 30.0
    # Seconds between rounds of the spool drainer (messages kept while the database was
    # locked or down, replayed once it answers; app/channels/spool.py).
    spool_drain_seconds: float = 2.0

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'huitou.db'}"

    @property
    def wecom_configured(self) -> bool:
        """The WeCom app can receive (token, AES key, corp id) and push (secret, agent)."""
        return all((self.wecom_corp_id, self.wecom_token, self.wecom_aes_key))

    @property
    def wechat_configured(self) -> bool:
        """The Official Account callback has its token (AES key optional: plain mode)."""
        return bool(self.wechat_app_id and self.wechat_token)

    @property
    def sms_configured(self) -> bool:
        return bool(
            self.sms_provider
            and self.sms_secret_id
            and self.sms_secret_key
            # Tencent needs its SmsSdkAppId; Aliyun has none.
            and (self.sms_sdk_app_id or self.sms_provider.strip().lower() == "aliyun")
            and self.sms_sign_name
        )

    def configured_channels(self) -> list[str]:
        """Names of the real channels switched on, in push preference order."""
        flags = (
            ("wecom", self.wecom_configured),
            ("wechat", self.wechat_configured),
            ("sms", self.sms_configured),
        )
        return [name for name, on in flags if on]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
