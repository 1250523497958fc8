"""The shipped deployment files keep the web chat on, behind sign-in."""

from __future__ import annotations

import re

import yaml

from app.config import PROJECT_ROOT, Settings
from app.web.access import owner_pages_mode


def dockerfile_env() -> dict[str, str]:
    """The HUITOU_* values the image's ENV instructions set."""
    text = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env |= dict(re.findall(r"(HUITOU_\w+)=(\S+)", line))
    return env


def test_the_image_listens_on_every_address_with_the_web_chat_behind_sign_in() -> None:
    env = dockerfile_env()
    assert env["HUITOU_HOST"] == "0.0.0.0"
    assert "HUITOU_WEBCHAT_ENABLED" not in env
    settings = Settings(host=env["HUITOU_HOST"])
    assert settings.webchat_enabled
    assert owner_pages_mode(settings) == "signin"


def test_compose_keeps_the_image_address_and_sets_the_public_url() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    env = compose["services"]["app"]["environment"]
    assert "HUITOU_HOST" not in env and "HUITOU_WEBCHAT_ENABLED" not in env
    assert "HUITOU_PUBLIC_URL" in env and "HUITOU_SECRET_KEY" in env
    settings = Settings(host=dockerfile_env()["HUITOU_HOST"], public_url="https://shop.example.com")
    assert owner_pages_mode(settings) == "signin"
