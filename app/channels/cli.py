"""`huitou wecom link-contacts`: link the customer contacts staff already have in WeCom."""

from __future__ import annotations

from typing import Annotated

import typer

wecom_cli = typer.Typer(help="企业微信", no_args_is_help=True)


@wecom_cli.command("link-contacts")
def link_contacts(shop: Annotated[str, typer.Option("--shop", help="店铺标识或编号")]) -> None:
    """把店里员工在企业微信里已有的客户,都对上店里的客户(删好友时才能提醒)。"""
    # Imported here: the rest of the CLI starts without the web and WeCom stack.
    from app.channels.contacts import link_existing_contacts
    from app.channels.wecom import WeComClient
    from app.clock import clock_for
    from app.config import get_settings
    from app.db import make_engine, upgrade
    from app.shops.service import ShopError

    settings = get_settings()
    if not (settings.wecom_corp_id and settings.wecom_secret):
        typer.secho("还没配置企业微信(HUITOU_WECOM_CORP_ID、HUITOU_WECOM_SECRET)。", err=True)
        raise typer.Exit(code=1)
    clock = clock_for(settings.today, settings.timezone)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    client = WeComClient(settings=settings, engine=engine, clock=clock)
    try:
        report = link_existing_contacts(engine=engine, api=client, shop_ref=shop)
    except ShopError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc
    finally:
        client.http.close()
    typer.echo(f"新对上 {len(report.linked)} 位,之前已对上 {report.already} 位。")
    for contact, customer in report.linked:
        typer.echo(f"  ✓ {contact} → {customer}")
    if report.several:
        typer.echo(f"{len(report.several)} 位对得上不止一位客户,请在企业微信里把备注改成手机号:")
        for contact, names in report.several:
            typer.echo(f"  ? {contact}:{'、'.join(names)}")
    if report.unmatched:
        typer.echo(
            f"{len(report.unmatched)} 位没对上。是老客户的话,在企业微信里把备注改成店里记的"
            "名字或手机号,会自动对上:"
        )
        for contact in report.unmatched:
            typer.echo(f"  · {contact}")
    for userid in report.failed:
        typer.secho(f"读取员工 {userid} 的客户列表失败(看日志)。", fg=typer.colors.RED, err=True)
    if report.failed:
        raise typer.Exit(code=1)


def register(cli: typer.Typer) -> None:
    """Add `huitou wecom …` to the main command."""
    cli.add_typer(wecom_cli, name="wecom")
