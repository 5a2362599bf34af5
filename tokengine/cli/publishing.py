"""Commands that publish one record an operator or a client decides: a request, a deposit
address binding, a price, a circuit-breaker change (and the breaker's state).

Every argument is checked with the same rules the API and the ledger apply (a request is
built by `core.requests`, an amount parsed by `core.money`) before anything is produced.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import click

from core import fields
from core.addresses import binding_problem
from core.assets import load_assets
from core.fields import FieldError
from core.money import AmountError, parse_amount
from core.requests import KINDS, RequestError, build_request
from tokengine.cli.arguments import fail, publish, read_json_argument, settings_or_fail
from topics import catalogue


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("kind")
@click.option("--json", "json_text", required=True, help="The request as JSON, or @FILE.")
def submit(kind: str, json_text: str) -> None:
    """Validate and produce one request event (KIND: deposit, withdrawal, transfer)."""
    if kind not in KINDS:
        fail(f"KIND: must be one of {', '.join(KINDS)}, not {kind!r}")
    data = read_json_argument(json_text)
    settings = settings_or_fail()
    try:
        record = build_request(kind, data, load_assets(settings.assets_file))
    except RequestError as error:
        fail(str(error))
    publish(settings, catalogue.REQUEST_TOPICS[kind], record["account_id"], record)
    click.echo(record["request_id"])


@click.command()
@click.option("--chain", type=click.Choice(["ethereum", "bitcoin", "bank"]), required=True)
@click.option("--address", required=True, help="Deposit address (or bank deposit reference).")
@click.option("--account", required=True, help="The user account it belongs to.")
def bind(chain: str, address: str, account: str) -> None:
    """Bind a deposit address (or a bank reference) to a user account.

    An address valid for its chain and network only; one already bound to another account
    is refused (consumers keep the first binding: see core/bindings.py).
    """
    from core.bindings import Bindings
    from topics.tail import read_to_end

    settings = settings_or_fail()
    try:
        fields.account_id(account, "--account")
    except FieldError as error:
        fail(str(error))
    assets = load_assets(settings.assets_file)
    network = next((a.network for a in assets.on_chain("bitcoin")), "bitcoin")
    problem = binding_problem(chain, address, network)
    if problem:
        fail(f"--address: {problem}")
    normalize = {"ethereum": str.lower, "bank": str.upper}.get(chain, str)
    bindings = Bindings(chain, normalize, network)
    for value in read_to_end(settings, catalogue.ADDRESS_BINDINGS):
        bindings.fold(value)
    bound = bindings.account_for(address)
    if bound is not None and bound != account:
        fail(f"--address: {chain}:{address} is already bound to another account ({bound})")
    binding = {
        "chain": chain,
        "address": address,
        "account_id": account,
        "bound_at": datetime.now(UTC),
    }
    publish(settings, catalogue.ADDRESS_BINDINGS, f"{chain}:{address}", binding)
    click.echo(f"{chain}:{address} -> {account}")


@click.command()
@click.argument("asset")
@click.argument("usd_price")
def price(asset: str, usd_price: str) -> None:
    """Publish an asset's USD price (confirmation levels use it): a positive decimal."""
    settings = settings_or_fail()
    if asset not in load_assets(settings.assets_file):
        fail(f"ASSET: unknown asset {asset!r}")
    try:
        value = parse_amount(usd_price)
    except AmountError as error:
        fail(f"USD_PRICE: {error}")
    if value <= 0:
        fail("USD_PRICE: must be positive (a price of 0 would need the fewest confirmations)")
    record = {"asset": asset, "usd_price": value, "as_of": datetime.now(UTC)}
    publish(settings, catalogue.PRICES, asset, record)
    click.echo(f"{asset}: {value} USD")


@click.group()
def breaker() -> None:
    """The circuit breaker: trip it, reset it, see it."""


def publish_breaker(scope: str, state: str, level: str, reason: str) -> None:
    from core.breaker import scope_problem
    from topics.breaker import breaker_record, publish_breaker_state
    from topics.codec import make_codec
    from topics.kafka import make_producer

    settings = settings_or_fail()
    problem = scope_problem(scope, load_assets(settings.assets_file).assets)
    if problem:
        fail(f"--scope: {problem}")
    record = breaker_record(scope, state, level, reason, f"operator:{getpass.getuser()}")
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    publish_breaker_state(make_producer(settings.kafka), settings.topic_prefix, codec, record)
    click.echo(f"{scope}: {state} ({reason})")


@breaker.command("trip")
@click.option("--scope", default="global", help="global or asset:CODE.")
@click.option("--suspend", is_flag=True, help="Only refuse new payouts (Significant level).")
@click.option("--reason", required=True, help="Why (recorded).")
def breaker_trip(scope: str, suspend: bool, reason: str) -> None:
    """Trip the breaker: payouts halt (or, with --suspend, new ones are refused)."""
    if suspend:
        publish_breaker(scope, "SUSPENDED", "SIGNIFICANT", reason)
    else:
        publish_breaker(scope, "OPEN", "CRITICAL", reason)


@breaker.command("reset")
@click.option("--scope", default="global", help="global or asset:CODE.")
@click.option("--reason", required=True, help="Why it is safe again (recorded).")
def breaker_reset(scope: str, reason: str) -> None:
    """Close the breaker; held payouts proceed."""
    publish_breaker(scope, "CLOSED", "OK", reason)


@breaker.command("status")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of lines.")
def breaker_status(as_json: bool) -> None:
    """The newest state of every breaker scope."""
    from topics.breaker import read_breaker_states
    from topics.codec import make_codec
    from topics.jsonable import dumps

    settings = settings_or_fail()
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    states = read_breaker_states(settings.kafka, settings.topic_prefix, codec)
    if as_json:
        click.echo(dumps(states))
        return
    if not states:
        click.echo("global: CLOSED (never tripped)")
    for scope, state in sorted(states.items()):
        click.echo(
            f"{scope}: {state['state']} level={state['level']} by {state['actor']} "
            f"at {state['changed_at'].isoformat()}: {state['reason']}"
        )


COMMANDS = (submit, bind, price, breaker)
