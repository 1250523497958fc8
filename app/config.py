"""Settings from the environment (HUITOU_*); nothing secret lives in the repo."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

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
    # The local web chat acts as the shop owner without a login; meant for loopback.
    webchat_enabled: bool = True
    # Freeze "today" (YYYY-MM-DD) for demos and reproducible screenshots.
    today: date | None = None
    # Seconds a pending question (e.g. "create this customer?") stays answerable.
    pending_ttl_seconds: int = 600

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'huitou.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
