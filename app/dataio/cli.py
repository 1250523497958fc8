"""`huitou import`, `huitou export` and `huitou customer forget`, added to the main CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.clock import Clock, clock_for, local_today
from app.config import Settings, get_settings
from app.db import make_engine, read_session, upgrade, write_session
from app.shops.service import ShopError, get_shop

customer_cli = typer.Typer(help="客户数据", no_args_is_help=True)


def _runtime() -> tuple[Settings, Clock]:
    settings = get_settings()
    return settings, clock_for(settings.today, settings.timezone)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def import_command(
    file: Annotated[Path, typer.Argument(help="客户或订单表格 .xlsx / .csv(UTF-8 或 GBK)")],
    shop: Annotated[str, typer.Option("--shop", help="店铺标识或编号")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="不再询问,直接导入(脚本用)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只检查并预览,不写入")] = False,
) -> None:
    """从表格导入客户和历史订单(先预览,确认后才写入)。"""
    from app.dataio.imports import analyse_import, write_import
    from app.dataio.read import Source
    from app.dataio.report import render_done, render_preview

    settings, clock = _runtime()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    source = Source.of(file)
    try:
        with read_session(engine) as session:
            found = get_shop(session=session, ref=shop)
            plan = analyse_import(session=session, shop=found, source=source, clock=clock)
    except ShopError as exc:
        raise _fail(f"{exc}。用 huitou shop list 看有哪些店铺。") from exc
    typer.echo(render_preview(plan, shop=found, templates_dir=settings.templates_dir))
    if not plan.accepted:
        raise typer.Exit(code=1)
    if plan.already_imported_at is not None:
        return
    if dry_run:
        typer.echo("(只做了检查,没有写入任何数据。)")
        return
    if not yes and not typer.confirm("确认导入吗?", default=False):
        typer.echo("已取消,没有写入任何数据。")
        return
    with write_session(engine) as session:
        found = get_shop(session=session, ref=shop)
        # Checked again inside the write transaction: the data may have moved meanwhile.
        fresh = analyse_import(session=session, shop=found, source=source, clock=clock)
        if fresh.sha256 != plan.sha256:
            raise _fail("文件在确认期间被改动了,没有导入。请重新运行一次看看新的预览。")
        if not fresh.accepted or fresh.already_imported_at is not None:
            typer.echo(render_preview(fresh, shop=found, templates_dir=settings.templates_dir))
            raise typer.Exit(code=0 if fresh.accepted else 1)
        result = write_import(session=session, shop=found, plan=fresh, clock=clock)
    typer.echo(render_done(result, shop=found, templates_dir=settings.templates_dir))


def export_command(
    shop: Annotated[str, typer.Option("--shop", help="店铺标识或编号")],
    out: Annotated[Path, typer.Option("-o", "--out", help="输出文件夹(不存在会新建)")],
    with_phones: Annotated[
        bool, typer.Option("--with-phones", help="导出完整电话(完整备份用;默认打码)")
    ] = False,
) -> None:
    """导出客户、订单、跟进记录和流失预警表(几个 CSV 加一个 .xlsx)。"""
    from app.dataio.exports import count_by_kind, export_shop

    settings, clock = _runtime()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    try:
        with read_session(engine) as session:
            found = get_shop(session=session, ref=shop)
            result = export_shop(
                session=session,
                shop=found,
                out_dir=out,
                today=local_today(clock, found.timezone),
                with_phones=with_phones,
            )
    except ShopError as exc:
        raise _fail(f"{exc}。用 huitou shop list 看有哪些店铺。") from exc
    except OSError as exc:
        raise _fail(f"写不进 {out}:{exc.strerror or exc}") from exc
    typer.echo(f"已导出 {found.name}:{count_by_kind(result)}")
    for path in result.files:
        typer.echo(f"  {path}")
    if not with_phones:
        typer.echo("电话已打码;需要完整备份请加 --with-phones,并妥善保管文件。")


@customer_cli.command("forget")
def forget_command(
    shop: Annotated[str, typer.Argument(help="店铺标识或编号")],
    customer: Annotated[str, typer.Argument(help="客户编号(如 12)、名字或电话")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="不再询问")] = False,
) -> None:
    """按客户要求删除其个人信息;订单数字保留用于统计。"""
    from app.customers.models import Customer
    from app.customers.service import CustomerError, mask_phone
    from app.dataio.privacy import find_customer_to_forget, forget_customer

    settings, clock = _runtime()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    try:
        with read_session(engine) as session:
            found = get_shop(session=session, ref=shop)
            target = find_customer_to_forget(session=session, shop=found, ref=customer)
            target_id = target.id
            shown = f"#{target.id} {target.name}" + (
                f" {mask_phone(target.phone)}" if target.phone else ""
            )
        if not yes and not typer.confirm(
            f"将删除客户 {shown} 的个人信息(名字、电话、地址、备注、聊天原文),"
            "订单数字保留用于统计。删除后无法恢复,确认吗?",
            default=False,
        ):
            typer.echo("已取消,什么都没改。")
            return
        with write_session(engine) as session:
            found = get_shop(session=session, ref=shop)
            again = session.get(Customer, target_id)
            assert again is not None
            result = forget_customer(session=session, shop=found, customer=again, clock=clock)
    except (ShopError, CustomerError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(
        f"已删除客户 {shown} 的个人信息,现在显示为“已删除客户#{result.customer_id}”;"
        f"保留了 {result.orders_kept} 单的日期、数量和金额用于统计,"
        f"清除了 {result.events_cleared} 条记录、{result.messages_cleared} 条聊天原文"
        f"和 {result.pushes_cleared} 条提醒推送里的名字与电话。"
    )


def register(cli: typer.Typer) -> None:
    """Add the data import/export commands to the main `huitou` command."""
    cli.command("import")(import_command)
    cli.command("export")(export_command)
    cli.add_typer(customer_cli, name="customer")
