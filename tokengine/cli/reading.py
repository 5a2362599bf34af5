"""Commands that read the engine's topics for a person: `tail`, `balances` and `wallets`."""

from __future__ import annotations

import sys

import click

from tokengine.cli.arguments import fail, settings_or_fail
from topics import catalogue


@click.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message.")
@click.option("--max", "max_messages", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("--idle-timeout", type=float, help="Stop after this many seconds without messages.")
def tail(
    topic: str, from_beginning: bool, max_messages: int | None, idle_timeout: float | None
) -> None:
    """Print a topic's messages as JSON lines (Avro decoded)."""
    if topic not in catalogue.BY_NAME:
        fail(f"TOPIC: unknown topic {topic!r} (see `tokengine topics list`)")
    from topics.tail import tail_topic

    settings = settings_or_fail()
    count = tail_topic(settings, topic, from_beginning, max_messages, idle_timeout, click.echo)
    if max_messages and count < max_messages:
        sys.exit(1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def wallets(as_json: bool) -> None:
    """The operator's wallets against the ledger (newest check per chain and asset), the
    cold wallets, and the sweeps (as `GET /api/v1/wallets` answers)."""
    from core.assets import load_assets
    from streams.reconciliation.wallet_report import fold_sweep, wallet_report
    from topics.jsonable import dumps
    from topics.tail import read_to_end

    settings = settings_or_fail()
    results = read_to_end(settings, catalogue.RECONCILIATION_RESULTS)
    sweeps: dict[str, dict] = {}
    for result in read_to_end(settings, catalogue.SWEEP_RESULTS):
        fold_sweep(sweeps, result)
    report = wallet_report(results, sweeps.values(), load_assets(settings.assets_file))
    if as_json:
        click.echo(dumps(report))
        return
    for row in report["holdings"]:
        click.echo(
            f"{row['chain']:9} {row['asset']:6} block {row['block']:<9} chain "
            f"{row['chain_balance']:>28f} ledger {row['ledger_balance']:>28f} {row['level']}"
        )
    for chain, address in report["cold_wallets"].items():
        click.echo(f"{chain:9} cold wallet {address}")
    for row in report["sweeps"]:
        click.echo(
            f"{row['chain']:9} {row['asset']:6} swept to {row['destination']:4} "
            f"{row['status']:9} {row['count']:>6} sweeps {row['amount']:>28f} "
            f"fees {row['network_fees']:f}"
        )


@click.command()
@click.option("--account", help="Only this account.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def balances(account: str | None, as_json: bool) -> None:
    """Current balances (newest balance update per account and asset)."""
    from topics.jsonable import dumps
    from topics.tail import read_to_end

    settings = settings_or_fail()
    newest: dict[tuple[str, str], dict] = {}
    for update in read_to_end(settings, catalogue.BALANCE_UPDATES):
        key = (update["account_id"], update["asset"])
        if account and update["account_id"] != account:
            continue
        if key not in newest or update["version"] >= newest[key]["version"]:
            newest[key] = update
    rows = [newest[key] for key in sorted(newest)]
    if as_json:
        shown = ("account_id", "asset", "balance", "reserved", "available")
        click.echo(dumps([{f: row[f] for f in shown} for row in rows]))
        return
    click.echo(f"{'account':24} {'asset':6} {'balance':>28} {'reserved':>28} {'available':>28}")
    for row in rows:
        click.echo(
            f"{row['account_id']:24} {row['asset']:6} {row['balance']:>28f} "
            f"{row['reserved']:>28f} {row['available']:>28f}"
        )


COMMANDS = (tail, balances, wallets)
