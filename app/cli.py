"""The `huitou` command line."""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

if TYPE_CHECKING:
    from app.risk.config import RiskConfig

from sqlmodel import Session, col, select

from app.channels.cli import register as register_wecom
from app.clock import Clock, clock_for
from app.config import Settings, get_settings
from app.dataio.cli import register as register_dataio
from app.db import make_engine, read_session, upgrade, write_session
from app.shops.models import INDUSTRIES, Shop
from app.shops.service import ShopError, create_shop, get_shop, issue_binding_code, list_shops

cli = typer.Typer(
    help="回头客 Huitou:帮小店留住老客户。", no_args_is_help=True, add_completion=False
)
shop_cli = typer.Typer(help="店铺管理", no_args_is_help=True)
db_cli = typer.Typer(help="数据库", no_args_is_help=True)
cli.add_typer(shop_cli, name="shop")
cli.add_typer(db_cli, name="db")


def _runtime() -> tuple[Settings, Clock]:
    settings = get_settings()
    return settings, clock_for(settings.today, settings.timezone)


def _find_shop(session: Session, ref: str) -> Shop:
    """The shop a command names, or a Chinese error that says how to list them."""
    try:
        return get_shop(session=session, ref=ref)
    except ShopError as exc:
        raise _fail(f"{exc}。用 huitou shop list 看有哪些店铺。") from exc


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """新建数据库,或升级到最新结构。"""
    settings, _ = _runtime()
    upgrade(make_engine(settings.effective_database_url))
    typer.echo("数据库已是最新结构。")


@cli.command()
def demo() -> None:
    """载入演示送水站(标识 demo);已经有了就不再载入。"""
    from app.demo.load import DEMO_SLUG, load_demo
    from app.shops.models import Shop

    settings, clock = _runtime()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    with read_session(engine) as session:
        exists = session.exec(select(Shop).where(Shop.slug == DEMO_SLUG)).first() is not None
    if settings.demo_past and not exists:
        typer.echo("正在载入演示店铺和它半年的使用记录(约半分钟)…")
    shop, created = load_demo(
        engine=engine, clock=clock, past=settings if settings.demo_past else None
    )
    typer.echo(f"演示店铺{'已载入' if created else '已存在'}:{shop.name}(标识 {shop.slug})")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="监听地址")] = None,
    port: Annotated[int | None, typer.Option(help="端口")] = None,
) -> None:
    """启动回头客服务(网页聊天和提醒);还没有店铺时先载入演示店铺。"""
    import uvicorn

    from app.demo.load import load_demo
    from app.main import create_app
    from app.web.access import is_loopback, owner_pages_mode

    settings, clock = _runtime()
    # The address given here decides, like HUITOU_HOST, whether the owner pages need sign-in.
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    host, port = settings.host, settings.port
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{port}"
    if "public_url" not in settings.model_fields_set and is_loopback(host):
        # Unset, links (报表, tap pages) point where this server listens, not at the default.
        settings = settings.model_copy(update={"public_url": url})
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    with read_session(engine) as session:
        has_shops = bool(list_shops(session=session))
    if not has_shops and settings.demo_on_empty:
        if settings.demo_past:
            typer.echo("正在载入演示店铺和它半年的使用记录(约半分钟)…")
        shop, _ = load_demo(
            engine=engine, clock=clock, past=settings if settings.demo_past else None
        )
        typer.echo(f"数据库里还没有店铺,已载入演示店铺:{shop.name}")
    mode = owner_pages_mode(settings)
    if mode == "local":
        typer.echo(
            f"\n回头客已启动:{url}\n"
            f"用这台电脑的浏览器打开上面的地址,像微信一样跟助手聊天。试试发:\n"
            f"  今天该跟进谁\n  王姐 2桶\n  王姐\n  帮助\n"
            f'(终端里也可以:huitou chat "今天该跟进谁" --shop demo)\n'
            f"只在本机可用;别的设备要用网页版,请先在微信里发「登录网页版」。\n"
        )
    elif mode == "signin":
        typer.echo(
            f"\n回头客已启动:{url}(对外地址 {settings.public_url})\n"
            f"网页版需要登录:店主在微信里发「登录网页版」,点回复里的一次性链接;\n"
            f"或在服务器上运行 huitou chat 登录网页版 --shop 店铺标识 拿到链接。\n"
        )
        if is_loopback(urlsplit(settings.public_url).hostname):
            typer.echo(
                "注意:HUITOU_PUBLIC_URL 还是本机地址,手机打不开登录链接和提醒里的链接;"
                "请设成手机能访问的地址(如 https://你的域名)。\n"
            )
    else:
        typer.echo(f"\n回头客已启动:{url}(网页聊天已关闭,HUITOU_WEBCHAT_ENABLED=false)\n")
    # INFO from the app (start-up mode, channels, digests) reaches the log; the CLI's
    # other commands stay at WARNING.
    logging.getLogger("app").setLevel(logging.INFO)
    app = create_app(settings=settings, engine=engine, clock=clock)
    uvicorn.run(app, host=host, port=port, log_level="info")


@cli.command()
def chat(
    message: Annotated[str | None, typer.Argument(help="要发给助手的一句话;不填则进入对话")] = None,
    shop: Annotated[str, typer.Option("--shop", help="店铺标识或编号")] = "demo",
) -> None:
    """在终端里以店主身份跟助手聊天。"""
    from app.channels.local import deliver_as_owner

    settings, clock = _runtime()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)

    def say(text: str) -> None:
        result = deliver_as_owner(
            engine=engine,
            settings=settings,
            clock=clock,
            shop_ref=shop,
            channel="console",
            text=text,
        )
        for reply in result.replies:
            typer.echo(reply)
            typer.echo("")
        for image in result.images:  # a report chart: saved as a file, its path printed
            from app.reports.charts import ChartError

            try:
                saved = image.save(Path(settings.data_dir) / "images")
            except ChartError as exc:
                typer.echo(f"🖼 {image.alt}\n(图没画出来:{exc})\n")
                continue
            typer.echo(f"🖼 {image.alt}\n{saved}")
            typer.echo("")

    try:
        if message is not None:
            say(message)
            return
        typer.echo("已进入对话(输入 退出 或按 Ctrl-D 结束)。")
        while True:
            try:
                line = input("我> ")
            except EOFError:
                typer.echo("")
                break
            if line.strip() in ("退出", "exit", "quit"):
                break
            say(line)
    except ShopError as exc:
        raise _fail(f"{exc}。用 huitou shop list 看有哪些店铺。") from exc
    except KeyboardInterrupt:
        typer.echo("")


@shop_cli.command("create")
def shop_create(
    name: Annotated[str, typer.Argument(help="店名")],
    industry: Annotated[str, typer.Option(help=f"行业:{'/'.join(INDUSTRIES)}")] = "water",
    slug: Annotated[str | None, typer.Option(help="店铺标识(英文、数字、连字符)")] = None,
) -> None:
    """新建店铺,显示店铺编号和一次性的 6 位绑定码。"""
    settings, clock = _runtime()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    try:
        with write_session(engine) as session:
            created = create_shop(
                session=session, name=name, industry=industry, clock=clock, slug=slug
            )
            code = issue_binding_code(session=session, shop=created, clock=clock)
            shop_id, shop_slug = created.id, created.slug
    except ShopError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"已创建店铺:{name}  编号 {shop_id}  标识 {shop_slug}")
    typer.echo(f"绑定码(24小时内有效,仅可用一次):{code}")


@shop_cli.command("code")
def shop_code(shop: Annotated[str, typer.Argument(help="店铺标识或编号")]) -> None:
    """重新生成绑定码(旧的随即作废)。"""
    settings, clock = _runtime()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    try:
        with write_session(engine) as session:
            found = get_shop(session=session, ref=shop)
            code = issue_binding_code(session=session, shop=found, clock=clock)
    except ShopError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"新的绑定码(24小时内有效,仅可用一次):{code}")


@shop_cli.command("list")
def shop_list() -> None:
    """列出所有店铺。"""
    settings, _ = _runtime()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    with read_session(engine) as session:
        shops = list_shops(session=session)
    if not shops:
        typer.echo("还没有店铺。运行 huitou demo 载入演示店铺,或 huitou shop create 店名。")
        return
    for s in shops:
        typer.echo(f"{s.id}\t{s.slug}\t{s.industry}\t{s.name}")


def _parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{option} 的日期要写成 YYYY-MM-DD,例如 2025-06-30(收到 {value!r})。") from None


@cli.command()
def score(
    orders: Annotated[Path, typer.Argument(help="订单文件 .csv 或 .xlsx(客户、日期、数量、金额)")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="评估日 YYYY-MM-DD;默认为文件里最后一单的日期")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="输出 CSV;默认 <订单文件名>_scores.csv")
    ] = None,
    horizon: Annotated[int, typer.Option(help="流失概率的时间窗(天)")] = 90,
    seasonality: Annotated[str, typer.Option(help="季节性:auto / water / none")] = "auto",
) -> None:
    """给订单表里每位客户算一算:阶段、流失概率、风险金额。"""
    from app.dataio.orders_file import OrderFileError
    from app.dataio.scores_file import run_score, summary_lines

    day = _parse_day(as_of, "--as-of")
    config = _risk_config(horizon, seasonality)
    try:
        run = run_score(orders, out=out, as_of=day, config=config)
    except OrderFileError as exc:
        raise _fail(str(exc)) from exc
    for line in summary_lines(run):
        typer.echo(line)


def _risk_config(horizon: int, seasonality: str) -> RiskConfig:
    """The engine settings from the command's options, or a clear refusal."""
    from app.risk.config import RiskConfig

    if seasonality not in ("auto", "water", "none"):
        raise _fail(f"--seasonality 只能是 auto、water 或 none(收到 {seasonality!r})。")
    if horizon < 1:
        raise _fail(f"--horizon 至少为 1 天(收到 {horizon})。")
    try:
        return RiskConfig(horizon_days=horizon, seasonality=seasonality)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail(f"参数有误:{exc}") from exc


@cli.command()
def backtest(
    orders: Annotated[
        Path | None, typer.Argument(help="订单文件 .csv 或 .xlsx;用 --shop 时不用给")
    ] = None,
    shop: Annotated[
        str | None, typer.Option("--shop", help="店铺标识或编号:回放店里记下的订单,用店里的设置")
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="有建议就直接改,不再询问(配合 --shop)")
    ] = False,
    horizon: Annotated[int | None, typer.Option(help="多少天不下单算流失,默认 90")] = None,
    step: Annotated[int, typer.Option(help="每隔几天回放一次")] = 14,
    from_: Annotated[str | None, typer.Option("--from", help="最早的回放日 YYYY-MM-DD")] = None,
    to: Annotated[str | None, typer.Option("--to", help="最晚的回放日 YYYY-MM-DD")] = None,
    seasonality: Annotated[
        str | None, typer.Option(help="季节性:auto / water / none,默认 auto")
    ] = None,
) -> None:
    """用店里自己的历史回放:看提醒准不准,提醒倍数该设多少(加 --shop 可以一键改)。"""
    from app.dataio.orders_file import OrderFileError, read_orders
    from app.risk.backtest import BacktestError, owner_choice, render_report, run_backtest

    start, end = _parse_day(from_, "--from"), _parse_day(to, "--to")
    if shop is None:
        if orders is None:
            raise _fail("请给出订单文件,或用 --shop 指定店铺。")
        config = _risk_config(
            90 if horizon is None else horizon, "auto" if seasonality is None else seasonality
        )
        try:
            loaded = read_orders(orders)
            report = run_backtest(loaded.orders, config=config, step=step, start=start, end=end)
        except (OrderFileError, BacktestError) as exc:
            raise _fail(str(exc)) from exc
        typer.echo(render_report(report))
        return
    if orders is not None or horizon is not None or seasonality is not None:
        # The point of --shop is to test the shop's own settings, the ones a change lands in.
        raise _fail(
            "用 --shop 时回放店里记下的订单、用店里的设置,"
            "不能再给订单文件、--horizon 或 --seasonality。"
        )

    from app.customers.models import Customer
    from app.customers.risk import _shop_orders, risk_config, ticket_value_cents

    settings, clock = _runtime()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    with read_session(engine) as session:
        found = _find_shop(session, shop)
        assert found.id is not None
        config = risk_config(found)
        ids = session.exec(select(Customer.id).where(Customer.shop_id == found.id))
        index = {cid: i for i, cid in enumerate(ids) if cid is not None}
        history = _shop_orders(session, found.id, index, ticket_value_cents(found))
    try:
        report = run_backtest(history, config=config, step=step, start=start, end=end)
    except BacktestError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(render_report(report))
    choice = owner_choice(report)
    if choice is None or choice[0] == config.quiet_ratio:
        return
    ratio = choice[0]
    ask = f"把「{found.name}」的提醒倍数从 {config.quiet_ratio:g} 改成 {ratio:g}?"
    if not yes and not typer.confirm(ask, default=False):
        typer.echo(f"没改,提醒倍数还是 {config.quiet_ratio:g}。")
        return
    from app.bot.commands import change_setting
    from app.shops.models import Shop
    from app.templating import render_message

    with write_session(engine) as session:
        own = session.get(Shop, found.id)
        assert own is not None

        def render(name: str, /, **context: Any) -> str:
            # As the chat renders it (BotContext.render): the same words for the same change.
            return render_message(
                settings.templates_dir,
                own.industry,
                own.slug,
                f"bot/{name}.txt.j2",
                shop=own,
                **context,
            )

        # The chat's own path (设置 提醒倍数): bounds checked, saved, the shop rescored.
        reply, before = change_setting(
            render, session=session, shop=own, key="quiet_ratio", value=ratio, clock=clock
        )
    if before is None:
        raise _fail(reply)
    typer.echo(reply)


# `huitou import`, `huitou export`, `huitou customer forget` (issue 7: data in and out).
register_dataio(cli)
# `huitou wecom link-contacts` (issue 17: WeCom contacts linked to customers).
register_wecom(cli)


@cli.command()
def digest(
    shop: Annotated[str, typer.Option("--shop", help="店铺标识或编号")],
    day: Annotated[
        str | None, typer.Option("--date", help="哪天的提醒(YYYY-MM-DD),默认今天")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只打印,不记录、不推送")] = False,
) -> None:
    """显示这家店今天的早间提醒;不加 --dry-run 会同时发出去(每天只发一次)。"""
    from zoneinfo import ZoneInfo

    from app.digest.build import build_digest
    from app.digest.scheduled import default_pushers
    from app.digest.service import run_digest

    settings, clock = _runtime()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    with read_session(engine) as session:
        found = _find_shop(session, shop)
        local_today = clock.now().astimezone(ZoneInfo(found.timezone)).date()
        when = _parse_day(day, "--date") or local_today
        if dry_run:
            preview = build_digest(
                session=session, shop=found, day=when, settings=settings, clock=clock, persist=False
            )
            for person in preview.people:
                typer.echo(f"—— 发给 {person.staff.name} ——")
                typer.echo(person.text)
                typer.echo("")
            return
    if when != local_today:
        raise _fail("只能发送今天的提醒;看别的日子请加 --dry-run。")
    assert found.id is not None
    result = run_digest(
        engine=engine,
        shop_id=found.id,
        day=when,
        settings=settings,
        clock=clock,
        pushers=default_pushers(settings=settings, engine=engine, clock=clock),
    )
    from app.digest.models import DigestDelivery, DigestRun

    with read_session(engine) as session:
        rows = session.exec(
            select(DigestDelivery)
            .join(DigestRun, col(DigestRun.id) == col(DigestDelivery.run_id))
            .where(DigestRun.shop_id == found.id, DigestRun.run_date == when)
        ).all()
        for row in rows:
            typer.echo(f"—— {row.title} · 状态 {row.status} · 渠道 {row.channel or '-'} ——")
            typer.echo(row.text)
            typer.echo("")
    labels = {
        "sent": "已发送",
        "partial": "部分没发出去,稍后自动重试",
        "skipped_sent": "今天已经发过了,不会重复发送",
        "skipped_held": "另一个进程正在发送",
    }
    typer.echo(labels.get(result.status, result.status))


@cli.command()
def backup(
    out: Annotated[
        Path | None,
        typer.Option("-o", "--out", help="备份文件;默认 <数据目录>/backups/huitou-<时间>.db"),
    ] = None,
) -> None:
    """备份数据库,服务不用停。"""
    from zoneinfo import ZoneInfo

    from app.ops.backup import BackupError, backup_database, default_backup_path

    settings, clock = _runtime()
    url = settings.effective_database_url
    try:
        local_now = clock.now().astimezone(ZoneInfo(settings.timezone))
        dest = out or default_backup_path(data_dir=settings.data_dir, url=url, now=local_now)
        result = backup_database(url=url, dest=dest)
    except BackupError as exc:
        raise _fail(str(exc)) from exc
    size = f"{result.size_bytes / 1024 / 1024:.1f} MB"
    typer.echo(f"已备份到 {result.path}({size})。恢复:huitou restore {result.path}")


@cli.command()
def restore(
    source: Annotated[Path, typer.Argument(help="huitou backup 生成的备份文件")],
    force: Annotated[
        bool, typer.Option("--force", help="目标数据库已有数据时也覆盖(先停服务)")
    ] = False,
) -> None:
    """从备份恢复数据库(数据库里已有数据时要加 --force)。"""
    from app.db import current_revision, head_revision
    from app.ops.backup import BackupError, restore_database

    settings, _ = _runtime()
    url = settings.effective_database_url
    try:
        result = restore_database(url=url, source=source, force=force)
    except BackupError as exc:
        raise _fail(str(exc)) from exc
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    replaced = f",覆盖了原有的 {result.replaced_rows} 行" if result.replaced_rows else ""
    typer.echo(f"已从 {source} 恢复{replaced}。")
    if revision != head_revision():
        typer.echo("备份的数据库结构比程序旧;启动服务或运行 huitou db upgrade 会自动升级。")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    cli()
