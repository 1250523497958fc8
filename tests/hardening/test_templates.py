"""Shop template overrides: no path traversal, no symlinks out, no Python internals."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from jinja2 import TemplateNotFound
from jinja2.exceptions import SecurityError

from app.config import PROJECT_ROOT
from app.templating import environment, render_message

PACKS = PROJECT_ROOT / "message_templates"
NAME = "bot/probe.txt.j2"  # written into the generic pack of the copy


@pytest.fixture
def templates(tmp_path: Path) -> Iterator[Path]:
    """A copy of the real packs with a shop override folder, and a secret outside it."""
    root = tmp_path / "message_templates"
    shutil.copytree(PACKS, root)
    (root / "shops" / "shop-a").mkdir(parents=True)
    (root / "generic" / NAME).write_text("标准话术", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("TOP-SECRET-KEY", encoding="utf-8")
    environment.cache_clear()
    yield root
    environment.cache_clear()


def override(root: Path, slug: str, name: str, body: str) -> Path:
    path = root / "shops" / slug / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def test_the_generic_template_exists_and_an_override_wins(templates: Path) -> None:
    assert (templates / "generic" / NAME).is_file()
    override(templates, "shop-a", "bot/custom.txt.j2", "本店:{{ who }}")
    assert render_message(templates, "water", "shop-a", "bot/custom.txt.j2", who="王姐") == (
        "本店:王姐"
    )


@pytest.mark.parametrize(
    "name",
    [
        "../../secret.txt",
        "../secret.txt",
        "bot/../../../secret.txt",
        "shops/../../secret.txt",
        "/etc/passwd",
        "..\\..\\secret.txt",
        "bot/%2e%2e/%2e%2e/secret.txt",
    ],
)
def test_template_names_cannot_climb_out_of_the_tree(templates: Path, name: str) -> None:
    with pytest.raises(TemplateNotFound):
        render_message(templates, "water", "shop-a", name)


@pytest.mark.parametrize("slug", ["..", "../..", "../../tmp", "/etc", "shop-a/../..", ".hidden",
                                  "A-UPPER", "x" * 65])  # fmt: skip
def test_a_slug_that_is_not_a_plain_segment_gets_no_override_folder(
    templates: Path, slug: str
) -> None:
    env = environment(templates, "water", slug)
    searched = [Path(p) for loader in env.loader.loaders for p in loader.searchpath]  # type: ignore[union-attr]
    assert searched == [templates / "water", templates / "generic"]
    # The packs still answer: a strange slug falls back to the standard wording.
    assert render_message(templates, "water", slug, NAME) == "标准话术"


def test_an_industry_that_is_not_a_plain_segment_is_ignored(templates: Path) -> None:
    env = environment(templates, "../../etc", "shop-a")
    searched = [Path(p) for loader in env.loader.loaders for p in loader.searchpath]  # type: ignore[union-attr]
    assert searched == [templates / "shops" / "shop-a", templates / "generic"]


def test_a_symlinked_override_pointing_outside_is_refused(templates: Path) -> None:
    link = templates / "shops" / "shop-a" / NAME
    link.parent.mkdir(parents=True)
    link.symlink_to(templates.parent / "secret.txt")
    # The shop's symlink is ignored and the pack's wording answers instead.
    assert render_message(templates, "water", "shop-a", NAME) == "标准话术"


def test_a_symlinked_override_folder_pointing_outside_is_refused(templates: Path) -> None:
    outside = templates.parent / "elsewhere" / "bot"
    outside.mkdir(parents=True)
    (outside / Path(NAME).name).write_text("TOP-SECRET-KEY", encoding="utf-8")
    (templates / "shops" / "shop-b").symlink_to(outside.parent, target_is_directory=True)
    assert render_message(templates, "water", "shop-b", NAME) == "标准话术"


def test_a_symlink_inside_the_tree_still_works(templates: Path) -> None:
    """Sharing wording between shops with a symlink inside message_templates is fine."""
    shared = override(templates, "shop-a", "bot/custom.txt.j2", "共享:{{ who }}")
    (templates / "shops" / "shop-c").mkdir()
    (templates / "shops" / "shop-c" / "bot").mkdir()
    (templates / "shops" / "shop-c" / "bot" / "custom.txt.j2").symlink_to(shared)
    assert render_message(templates, "water", "shop-c", "bot/custom.txt.j2", who="李") == "共享:李"


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ who.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ self._TemplateReference__context }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_a_shop_template_cannot_reach_python_internals(templates: Path, body: str) -> None:
    override(templates, "shop-a", "bot/evil.txt.j2", body)
    with pytest.raises(SecurityError):
        render_message(templates, "water", "shop-a", "bot/evil.txt.j2", who="王姐")


def test_a_shop_template_cannot_read_settings_it_was_not_given(templates: Path) -> None:
    override(templates, "shop-a", "bot/evil.txt.j2", "{{ config }}")
    with pytest.raises(Exception, match="config"):
        render_message(templates, "water", "shop-a", "bot/evil.txt.j2")


def test_remembered_checks_still_refuse_what_the_stock_sandbox_refuses(templates: Path) -> None:
    """MemoSandbox remembers per (type, name): a safe name on one type never opens another."""

    def helper() -> str:
        return "x"

    override(templates, "shop-a", "bot/ok.txt.j2", "{{ who.upper() }}{{ f.__name__ }}")
    override(templates, "shop-a", "bot/frame.txt.j2", "{{ g.gi_frame }}")
    with pytest.raises(SecurityError):
        render_message(templates, "water", "shop-a", "bot/ok.txt.j2", who="王姐", f=helper)
    generator = (n for n in range(1))
    for _ in range(2):  # the second time the answer comes from memory: still refused
        with pytest.raises(SecurityError):
            render_message(templates, "water", "shop-a", "bot/frame.txt.j2", g=generator)
    override(templates, "shop-a", "bot/name.txt.j2", "{{ who.upper() }}")
    for _ in range(2):
        assert render_message(templates, "water", "shop-a", "bot/name.txt.j2", who="wang") == (
            "WANG"
        )
    env = environment(templates, "water", "shop-a")
    assert not env.is_safe_attribute(generator, "gi_frame", None)
    assert not env.is_safe_attribute(helper, "__globals__", None)
    assert env.is_safe_attribute("wang", "upper", None)


def test_an_edited_template_is_picked_up_after_the_reload_interval(
    templates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.templating as templating

    now = [1000.0]
    monkeypatch.setattr(templating.time, "monotonic", lambda: now[0])
    path = override(templates, "shop-a", "bot/custom.txt.j2", "旧话术")
    assert render_message(templates, "water", "shop-a", "bot/custom.txt.j2") == "旧话术"
    path.write_text("新话术", encoding="utf-8")
    os.utime(path, (path.stat().st_mtime + 5, path.stat().st_mtime + 5))
    # Within the interval the cached template is served without touching the file...
    now[0] += templating.RELOAD_CHECK_SECONDS / 2
    assert render_message(templates, "water", "shop-a", "bot/custom.txt.j2") == "旧话术"
    # ...and once it has passed, the edit is read.
    now[0] += templating.RELOAD_CHECK_SECONDS
    assert render_message(templates, "water", "shop-a", "bot/custom.txt.j2") == "新话术"
