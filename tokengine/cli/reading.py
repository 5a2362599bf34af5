"""Commands that read the engine's topics for a person: `tail` and `balances`."""

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


COMMANDS = (tail, balances)
