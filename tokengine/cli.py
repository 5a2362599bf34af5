"""The `tokengine` command line (click): run the engine and talk to its topics.

Commands: `up` (what `make run` runs), `worker`, `sink`, `db migrate`, `verify-ledger`,
`connectors`, `bind`, `price`, `topics create|list`, `submit`, `tail`, `balances`,
`breaker trip|reset|status`.
Bad arguments print one line naming the field and exit with code 2, producing nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from core import fields
from core.addresses import binding_problem
from core.assets import AssetConfigError, load_assets
from core.config import Settings
from core.fields import FieldError, load_json
from core.money import AmountError, parse_amount
from core.requests import KINDS, RequestError, build_request
from topics import catalogue

USAGE_ERROR = 2
MAX_JSON_FILE_BYTES = 1024 * 1024
REQUEST_TOPICS = {
    "deposit": catalogue.DEPOSIT_REQUESTS,
    "withdrawal": catalogue.WITHDRAWAL_REQUESTS,
    "transfer": catalogue.TRANSFER_REQUESTS,
}


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(USAGE_ERROR)


def settings_or_fail(need_kafka: bool = True) -> Settings:
    try:
        settings = Settings.from_env()
        load_assets(settings.assets_file)  # a configuration that contradicts itself: no start
    except AssetConfigError as error:
        fail(f"{settings.assets_file}: {error}")
    except (ValueError, OSError) as error:
        fail(str(error))
    if need_kafka and not settings.kafka:
        fail("TOKENGINE_KAFKA: not set (the bootstrap servers of the engine's broker)")
    return settings


@click.group()
def main() -> None:
    """TokEngine: an exactly-once token ledger on Kafka."""


@main.command()
@click.option("--workers", type=click.IntRange(1, 8), default=None, help="Faust workers to run.")
def up(workers: int | None) -> None:
    """Start everything: embedded services (unless configured), topics, workers, API."""
    from tokengine.up import run_up

    settings = settings_or_fail(need_kafka=False)
    sys.exit(run_up(settings.with_overrides(workers=workers or settings.workers)))


@main.command()
def worker() -> None:
    """Run one Faust worker against the configured services."""
    settings = settings_or_fail()
    from tokengine.worker import run_worker

    sys.argv = [sys.argv[0]]  # Faust's own command line must not see ours
    run_worker(settings)


@main.group()
def topics() -> None:
    """Topic catalogue commands."""


@topics.command("create")
def topics_create() -> None:
    """Create every catalogue topic (idempotent)."""
    from topics.admin import create_topics

    settings = settings_or_fail()
    for name, outcome in sorted(create_topics(settings.kafka, settings.topic_prefix).items()):
        click.echo(f"{outcome:8} {name}")


@topics.command("list")
def topics_list() -> None:
    """Print the catalogue."""
    for spec in catalogue.TOPICS:
        click.echo(f"{spec.name:24} p={spec.partitions:<2} key={spec.key:16} {spec.value_schema}")


def read_json_argument(text: str) -> object:
    document: str | bytes = text
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            with path.open("rb") as handle:
                document = handle.read(MAX_JSON_FILE_BYTES + 1)
        except OSError as error:
            fail(f"--json: cannot read {path}: {error.strerror}")
        if len(document) > MAX_JSON_FILE_BYTES:
            fail(f"--json: {path} is larger than {MAX_JSON_FILE_BYTES} bytes")
    try:
        return load_json(document)
    except FieldError as error:
        fail(f"--json: {str(error).removeprefix('json: ')}")


@main.command(context_settings={"ignore_unknown_options": False})
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
    from topics.codec import make_codec
    from topics.kafka import make_producer

    topic = REQUEST_TOPICS[kind]
    value = make_codec(settings.schema_registry, settings.topic_prefix).encode(topic, record)
    producer = make_producer(settings.kafka)
    producer.produce(settings.topic_prefix + topic, value, record["account_id"].encode())
    if producer.flush(30) != 0:
        click.echo("error: the broker did not acknowledge the request", err=True)
        sys.exit(1)
    click.echo(record["request_id"])


@main.command()
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


@main.command()
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
        fields = ("account_id", "asset", "balance", "reserved", "available")
        click.echo(dumps([{f: row[f] for f in fields} for row in rows]))
        return
    click.echo(f"{'account':24} {'asset':6} {'balance':>28} {'reserved':>28} {'available':>28}")
    for row in rows:
        click.echo(
            f"{row['account_id']:24} {row['asset']:6} {row['balance']:>28f} "
            f"{row['reserved']:>28f} {row['available']:>28f}"
        )


@main.group()
def breaker() -> None:
    """The circuit breaker: trip it, reset it, see it."""


def _publish_breaker(scope: str, state: str, level: str, reason: str) -> None:
    import getpass

    from topics.breaker import breaker_record, publish_breaker_state
    from topics.codec import make_codec
    from topics.kafka import make_producer

    settings = settings_or_fail()
    record = breaker_record(scope, state, level, reason, f"operator:{getpass.getuser()}")
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    publish_breaker_state(make_producer(settings.kafka), settings.topic_prefix, codec, record)
    click.echo(f"{scope}: {state} ({reason})")


def _check_scope(scope: str) -> None:
    from core.breaker import scope_problem

    problem = scope_problem(scope, load_assets(settings_or_fail().assets_file).assets)
    if problem:
        fail(f"--scope: {problem}")


@breaker.command("trip")
@click.option("--scope", default="global", help="global or asset:CODE.")
@click.option("--suspend", is_flag=True, help="Only refuse new payouts (Significant level).")
@click.option("--reason", required=True, help="Why (recorded).")
def breaker_trip(scope: str, suspend: bool, reason: str) -> None:
    """Trip the breaker: payouts halt (or, with --suspend, new ones are refused)."""
    _check_scope(scope)
    if suspend:
        _publish_breaker(scope, "SUSPENDED", "SIGNIFICANT", reason)
    else:
        _publish_breaker(scope, "OPEN", "CRITICAL", reason)


@breaker.command("reset")
@click.option("--scope", default="global", help="global or asset:CODE.")
@click.option("--reason", required=True, help="Why it is safe again (recorded).")
def breaker_reset(scope: str, reason: str) -> None:
    """Close the breaker; held payouts proceed."""
    _check_scope(scope)
    _publish_breaker(scope, "CLOSED", "OK", reason)


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


def database_url_or_fail(settings: Settings) -> str:
    if not settings.database_url:
        fail("TOKENGINE_DATABASE_URL: not set (the Postgres the sink writes)")
    return settings.database_url


@main.group()
def db() -> None:
    """The Postgres sink's database."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the schema migrations not applied yet."""
    from sinks.migrate import migrate

    applied = migrate(database_url_or_fail(settings_or_fail(need_kafka=False)))
    click.echo(f"applied: {', '.join(applied)}" if applied else "up to date")


@main.command()
def sink() -> None:
    """Run the Postgres sink (migrates first) until stopped."""
    from sinks.postgres import run_sink

    settings = settings_or_fail()
    database_url_or_fail(settings)
    run_sink(settings)


@main.command("verify-ledger")
@click.option(
    "--source",
    type=click.Choice(["postgres", "topic", "both"]),
    default="both",
    help="Where to read the ledger from.",
)
def verify_ledger(source: str) -> None:
    """Recompute every account's hash chain and balances; exit 1 at the first break."""
    from sinks.verify import verify_chains, verify_postgres
    from topics.tail import read_to_end

    settings = settings_or_fail(need_kafka=source != "postgres")
    results = []
    if source in ("postgres", "both"):
        results.append(verify_postgres(database_url_or_fail(settings)))
    if source in ("topic", "both"):
        entries = read_to_end(settings, catalogue.LEDGER_ENTRIES)
        results.append(verify_chains("topic", entries))
    for result in results:
        click.echo(result.summary())
        for problem in result.breaks:
            click.echo(f"  break: {problem}")
    sys.exit(0 if all(result.ok for result in results) else 1)


@main.command()
def connectors() -> None:
    """Run the chain watchers and payout executors until stopped."""
    from connectors.runner import run_connectors

    settings = settings_or_fail()
    if not settings.eth_rpc and not settings.btc_rpc:
        fail("TOKENGINE_ETH_RPC / TOKENGINE_BTC_RPC: neither is set (no chain to watch)")
    run_connectors(settings)


@main.command()
@click.option("--chain", type=click.Choice(["ethereum", "bitcoin", "bank"]), required=True)
@click.option("--address", required=True, help="Deposit address (or bank deposit reference).")
@click.option("--account", required=True, help="The user account it belongs to.")
def bind(chain: str, address: str, account: str) -> None:
    """Bind a deposit address (or a bank reference) to a user account.

    An address valid for its chain and network only; one already bound to another account
    is refused (consumers keep the first binding: see tokengine/bindings.py).
    """
    from datetime import UTC, datetime

    from core.bindings import Bindings
    from topics.codec import make_codec
    from topics.kafka import make_producer
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
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    producer = make_producer(settings.kafka)
    binding = {
        "chain": chain,
        "address": address,
        "account_id": account,
        "bound_at": datetime.now(UTC),
    }
    producer.produce(
        settings.topic_prefix + catalogue.ADDRESS_BINDINGS,
        codec.encode(catalogue.ADDRESS_BINDINGS, binding),
        f"{chain}:{address}".encode(),
    )
    if producer.flush(30) != 0:
        fail("the broker did not acknowledge the binding")
    click.echo(f"{chain}:{address} -> {account}")


@main.command()
@click.argument("asset")
@click.argument("usd_price")
def price(asset: str, usd_price: str) -> None:
    """Publish an asset's USD price (confirmation levels use it): a positive decimal."""
    from datetime import UTC, datetime

    from topics.codec import make_codec
    from topics.kafka import make_producer

    settings = settings_or_fail()
    if asset not in load_assets(settings.assets_file):
        fail(f"ASSET: unknown asset {asset!r}")
    try:
        value = parse_amount(usd_price)
    except AmountError as error:
        fail(f"USD_PRICE: {error}")
    if value <= 0:
        fail("USD_PRICE: must be positive (a price of 0 would need the fewest confirmations)")
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    producer = make_producer(settings.kafka)
    record = {"asset": asset, "usd_price": value, "as_of": datetime.now(UTC)}
    producer.produce(
        settings.topic_prefix + catalogue.PRICES,
        codec.encode(catalogue.PRICES, record),
        asset.encode(),
    )
    if producer.flush(30) != 0:
        fail("the broker did not acknowledge the price")
    click.echo(f"{asset}: {value} USD")


@main.command()
@click.option(
    "--load",
    "load_requests",
    type=click.IntRange(0, 100_000),
    default=3000,
    help="Requests in the load phase.",
)
def demo(load_requests: int) -> None:
    """Run the scripted end-to-end scenario; exit 0 only if every final check holds."""
    from tokengine.demo import run_demo

    sys.exit(run_demo(settings_or_fail(need_kafka=False), load_requests))
