"""Owner-facing wording, rendered from message_templates/ with Jinja2.

Lookup order: the shop's own overrides, then its industry pack, then the generic pack,
so an owner can reword one message without copying the rest.

A shop's overrides are text someone other than us wrote, so templates run in Jinja2's
sandbox (no `''.__class__.__mro__` walk to Python internals) and a template file is only
read when its real path, symlinks resolved, lies inside the templates directory.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

log = logging.getLogger(__name__)

_SAFE_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# An edited template file is picked up within this many seconds (not a stat per render).
RELOAD_CHECK_SECONDS = 1.0


def _yuan(cents: int | None) -> str:
    """1800 -> '18', 1850 -> '18.5'."""
    if cents is None:
        return ""
    text = f"{cents / 100:.2f}".rstrip("0").rstrip(".")
    return text


def _whole_yuan(cents: int | None) -> str:
    """Totals and estimates as owners are told money: 71609 -> '716' (never cents)."""
    if cents is None:
        return ""
    return str(round(cents / 100))


def _qty(value: float | int | None) -> str:
    """Quantities and intervals without a useless '.0' (2.0 -> '2', 2.5 -> '2.5')."""
    if value is None:
        return ""
    rounded = round(float(value), 1)
    return str(int(rounded)) if rounded == int(rounded) else str(rounded)


def _days(value: float | None) -> str:
    """An interval in whole days, as owners count them (25.1 -> '25')."""
    return "" if value is None else str(round(value))


def _md(value: Any) -> str:
    """A date as the owner says it: 3月8日."""
    return f"{value.month}月{value.day}日" if value is not None else ""


def _md_of(value: Any, today: Any) -> str:
    """3月8日, with the year when it is not today's year (2025年11月22日): a date a year back
    must not read as this year's."""
    if value is None:
        return ""
    year = f"{value.year}年" if value.year != today.year else ""
    return f"{year}{value.month}月{value.day}日"


def _checked_at_most_every(seconds: float, uptodate: Callable[[], bool]) -> Callable[[], bool]:
    """`uptodate` (a file's mtime check) asked at most once per `seconds`; True between."""
    last = time.monotonic()

    def check() -> bool:
        nonlocal last
        now = time.monotonic()
        if now - last < seconds:
            return True
        last = now
        return uptodate()

    return check


class MemoSandbox(SandboxedEnvironment):
    """Jinja2's sandbox with its attribute check remembered per (type, attribute name).

    The stock check depends only on the object's type and the name (an underscore, or an
    internal attribute of a function, frame, code object or generator), not on the value,
    so the answer for `d.customer.name` is the same on every line of a list: remembered,
    a 20-line follow-up list renders in about half the time. The str.format guard in
    `getattr` still runs on every access.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._safe: dict[tuple[type, str], bool] = {}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        key = (type(obj), attr)
        safe = self._safe.get(key)
        if safe is None:
            safe = self._safe[key] = super().is_safe_attribute(obj, attr, value)
        return safe


class ContainedLoader(FileSystemLoader):
    """A FileSystemLoader that refuses files whose real path leaves `root` (a symlink to
    /etc/passwd dropped into a shop's override folder, or the folder itself a symlink)."""

    def __init__(self, searchpath: Path, root: Path) -> None:
        super().__init__(str(searchpath))
        self.root = root

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        # split_template_path refuses ".." segments; absolute names stay under searchpath.
        pieces = split_template_path(template)
        for base in self.searchpath:
            candidate = Path(base, *pieces)
            if candidate.is_file() and not candidate.resolve().is_relative_to(self.root):
                log.warning("template %s resolves outside %s; ignored", candidate, self.root)
                raise TemplateNotFound(template)
        source, filename, uptodate = super().get_source(environment, template)
        return source, filename, _checked_at_most_every(RELOAD_CHECK_SECONDS, uptodate)


@lru_cache(maxsize=256)
def environment(templates_dir: Path, industry: str, shop_slug: str | None) -> Environment:
    """One cached Environment per (pack, shop override) combination."""
    searchpath: list[Path] = []
    # Path segments come from our own data, but check anyway: a slug must never escape the tree.
    if shop_slug and _SAFE_SEGMENT.match(shop_slug):
        searchpath.append(templates_dir / "shops" / shop_slug)
    if _SAFE_SEGMENT.match(industry):
        searchpath.append(templates_dir / industry)
    searchpath.append(templates_dir / "generic")
    root = templates_dir.resolve()
    env = MemoSandbox(
        loader=ChoiceLoader([ContainedLoader(p, root) for p in searchpath]),
        undefined=StrictUndefined,
        autoescape=False,  # chat text is plain text, never HTML; HTML pages use their own env
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["yuan"] = _yuan  # an amount as recorded (what the owner typed: 12.5)
    env.filters["whole_yuan"] = _whole_yuan  # totals and estimates
    env.filters["qty"] = _qty
    env.filters["md"] = _md
    env.filters["md_of"] = _md_of
    env.filters["days"] = _days
    return env


def render_message(
    templates_dir: Path, industry: str, shop_slug: str | None, name: str, /, **context: Any
) -> str:
    """Render one message template to text, trimmed of surrounding blank lines."""
    template = environment(templates_dir, industry, shop_slug).get_template(name)
    return template.render(**context).strip()
