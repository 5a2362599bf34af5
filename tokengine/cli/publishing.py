"""Commands that publish one record an operator or a client decides: a request, a deposit
address binding (by hand, or from a pool), the assignment of a deposit in suspense, a
price, a circuit-breaker change (and the breaker's state), API keys.

Every argument is checked with the same rules the API and the ledger apply (a request is
built by `core.requests`; an operator's decision by `topics.operator_records`, as the
API's) before anything is produced. Operator decisions follow the local-owner rule
(`tokengine.cli.arguments`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from core import access, fields
from core.assets import load_assets
from core.fields import SUSPENSE_ACCOUNT, FieldError
from core.requests import KINDS, RequestError, build_request
from tokengine.cli.arguments import (
    fail,
    owner_actor,
    owner_producer,
    publish,
    read_json_argument,
    settings_or_fail,
)
from topics import catalogue, operator_records


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
@click.option("--chain", type=click.Choice(operator_records.CHAINS), required=True)
@click.option("--address", required=True, help="Deposit address (or bank deposit reference).")
@click.option("--account", required=True, help="The user account it belongs to.")
def bind(chain: str, address: str, account: str) -> None:
    """Bind a deposit address (or a bank reference) to a user account.

    An address valid for its chain and network only; one already bound to another account
    is refused (consumers keep the first binding: see core/bindings.py).
    """
    settings = settings_or_fail()
    assets = load_assets(settings.assets_file)
    try:
        key, binding = operator_records.binding(
            settings, assets, chain, address, account, owner_actor()
        )
    except FieldError as error:
        fail(f"--{error.field}: {str(error).split(': ', 1)[-1]}")
    publish(settings, catalogue.ADDRESS_BINDINGS, key, binding)
    click.echo(f"{chain}:{address} -> {account}")


@click.command("deposit-address")
@click.option("--chain", type=click.Choice(("ethereum", "bitcoin")), required=True)
@click.option("--account", required=True, help="The user account the address is for.")
def deposit_address(chain: str, account: str) -> None:
    """Hand out an account's deposit address from the chain's pool (the same one while its
    binding lives; see topics/address_binder.py); prints the address and its expiry."""
    from topics.address_binder import Binder, PoolExhausted
    from topics.codec import make_codec

    settings = settings_or_fail()
    try:
        account = fields.account_id(account, "account")
    except FieldError as error:
        fail(f"--account: {str(error).split(': ', 1)[-1]}")
    producer = owner_producer(settings)
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    binder = Binder(settings.kafka or "", codec, producer, load_assets(settings.assets_file))
    binder.start()
    try:
        bound = binder.bind(chain, account, owner_actor())
    except FieldError as error:
        fail(f"--{error.field}: {str(error).split(': ', 1)[-1]}")
    except (PoolExhausted, TimeoutError) as error:
        fail(str(error))
    finally:
        binder.stop()
    click.echo(f"{chain}:{bound.address} -> {account} until {bound.expires_at.isoformat()}")


@click.command()
@click.option("--deposit", "deposit_id", required=True, help="chain:tx_hash:index")
@click.option("--asset", required=True)
@click.option("--amount", required=True, help="As held in suspense.")
@click.option("--account", required=True, help="The user account it belongs to.")
@click.option("--note", required=True, help="Why: the evidence (a ticket, the sender).")
def assign(deposit_id: str, asset: str, amount: str, account: str, note: str) -> None:
    """Assign a deposit held in suspense to the user account it belongs to (once)."""
    settings = settings_or_fail()
    body = {"deposit_id": deposit_id, "asset": asset, "amount": amount, "account": account,
            "note": note}  # fmt: skip
    try:
        record = operator_records.assignment(load_assets(settings.assets_file), body, owner_actor())
    except FieldError as error:
        fail(f"--{error.field}: {str(error).split(': ', 1)[-1]}")
    publish(settings, catalogue.DEPOSIT_ASSIGNMENTS, SUSPENSE_ACCOUNT, record)
    click.echo(f"{deposit_id} -> {record['account_id']} (assignment sent; the ledger checks it)")


@click.command()
@click.argument("asset")
@click.argument("usd_price")
def price(asset: str, usd_price: str) -> None:
    """Publish an asset's USD price (confirmation levels use it): a positive decimal."""
    settings = settings_or_fail()
    try:
        record = operator_records.price(
            load_assets(settings.assets_file), asset, usd_price, owner_actor()
        )
    except FieldError as error:
        fail(f"{error.field.upper()}: {str(error).split(': ', 1)[-1]}")
    publish(settings, catalogue.PRICES, asset, record)
    click.echo(f"{asset}: {record['usd_price']} USD")


@click.group()
def breaker() -> None:
    """The circuit breaker: trip it, reset it, see it."""


def publish_breaker(action: str, scope: str, reason: str) -> None:
    settings = settings_or_fail()
    assets = load_assets(settings.assets_file)
    try:
        record = operator_records.breaker_change(assets, action, scope, reason, owner_actor())
    except FieldError as error:
        fail(f"--{error.field}: {str(error).split(': ', 1)[-1]}")
    publish(settings, catalogue.BREAKER_STATE, scope, record)
    click.echo(f"{scope}: {record['state']} ({reason})")


@breaker.command("trip")
@click.option("--scope", default="global", help="global or asset:CODE.")
@click.option("--suspend", is_flag=True, help="Only refuse new payouts (Significant level).")
@click.option("--reason", required=True, help="Why (recorded).")
def breaker_trip(scope: str, suspend: bool, reason: str) -> None:
    """Trip the breaker: payouts halt (or, with --suspend, new ones are refused)."""
    publish_breaker("suspend" if suspend else "trip", scope, reason)


@breaker.command("reset")
@click.option("--scope", default="global", help="global or asset:CODE.")
@click.option("--reason", required=True, help="Why it is safe again (recorded).")
def breaker_reset(scope: str, reason: str) -> None:
    """Close the breaker; held payouts proceed."""
    publish_breaker("reset", scope, reason)


@breaker.command("status")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of lines.")
def breaker_status(as_json: bool) -> None:
    """The newest state of every breaker scope."""
    from topics.authentication import record_auth
    from topics.breaker import read_breaker_states
    from topics.codec import make_codec
    from topics.jsonable import dumps

    settings = settings_or_fail()
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    auth = record_auth(settings, None)
    states = read_breaker_states(settings.kafka, settings.topic_prefix, codec, auth)
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


@click.group()
def keys() -> None:
    """API keys: create (shown once), list, revoke. For the local owner (see README)."""


@keys.command("create")
@click.option(
    "--role", type=click.Choice([r.lower() for r in access.ROLES]), required=True, help="Role."
)
@click.option("--account", "accounts", multiple=True, help="An account it acts for (repeat).")
@click.option("--label", default="", help="Who or what holds it (recorded).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write it here.")
def keys_create(role: str, accounts: tuple[str, ...], label: str, out: Path | None) -> None:
    """Create a key; it is printed (or written to --out, mode 0600) once, never again."""
    settings = settings_or_fail()
    try:
        token, record = operator_records.api_key(role, list(accounts), label, owner_actor())
    except FieldError as error:
        fail(f"--{error.field.rstrip('s')}: {str(error).split(': ', 1)[-1]}")
    publish(settings, catalogue.API_KEYS, record["key_id"], record)
    if out is None:
        click.echo(token)
        return
    write_secret(out, token)
    click.echo(f"key {record['key_id']} ({role}) written to {out}")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of lines.")
def keys_list(as_json: bool) -> None:
    """Every key: id, role, accounts, label, status (never the key or its hash)."""
    from topics.jsonable import dumps

    listing = key_ring(settings_or_fail()).listing()
    if as_json:
        click.echo(dumps(listing))
        return
    for key in listing:
        accounts = ",".join(key["accounts"]) or "-"
        click.echo(f"{key['key_id']} {key['role']} {key['status']} {accounts} {key['label']}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key everywhere (within about a second); final."""
    settings = settings_or_fail()
    record = key_ring(settings).records.get(key_id)
    if record is None:
        fail(f"KEY_ID: no key {key_id!r}")
    revoked = access.revoked(record, owner_actor(), datetime.now(UTC))
    publish(settings, catalogue.API_KEYS, key_id, revoked)
    click.echo(f"{key_id}: REVOKED")


def key_ring(settings) -> access.KeyRing:
    from topics.tail import read_to_end

    ring = access.KeyRing()
    for record in read_to_end(settings, catalogue.API_KEYS):
        ring.fold(record)
    return ring


def write_secret(path: Path, text: str) -> None:
    """`text` in a new file only its owner can read (an existing file is not replaced)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        fail(f"--out: {path}: {error.strerror}")
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")


COMMANDS = (submit, bind, deposit_address, assign, price, breaker, keys)
