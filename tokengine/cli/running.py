"""Commands that run a part of the engine, or prepare or check what it runs on.

`up` (what `make run` runs), `worker`, `sink`, `connectors`, `demo`, `topics create|list`,
`db migrate`, `verify-ledger`. Each starts from the settings in the environment and
refuses to start on a configuration that contradicts itself.
"""

from __future__ import annotations

import sys

import click

from tokengine.cli.arguments import database_url_or_fail, fail, settings_or_fail
from topics import catalogue


@click.command()
@click.option("--workers", type=click.IntRange(1, 8), default=None, help="Faust workers to run.")
@click.option(
    "--fresh", is_flag=True, help="Empty DATA_DIR first: start from nothing (the data is lost)."
)
def up(workers: int | None, fresh: bool) -> None:
    """Start everything: embedded services (unless configured), topics, workers, API."""
    from tokengine.up import run_up

    settings = settings_or_fail(need_kafka=False)
    sys.exit(run_up(settings.with_overrides(workers=workers or settings.workers), fresh))


@click.command()
def worker() -> None:
    """Run one Faust worker against the configured services."""
    settings = settings_or_fail()
    from tokengine.worker import run_worker

    sys.argv = [sys.argv[0]]  # Faust's own command line must not see ours
    run_worker(settings)


def serve_metrics(settings) -> None:
    """This process's Prometheus metrics at http://API_BIND:METRICS_PORT/metrics, when
    TOKENGINE_METRICS_PORT is set (the sink and the connectors; a worker serves its own on
    the API port, behind a key). No key here: publish the port to Prometheus alone."""
    if settings.metrics_port <= 0:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(settings.metrics_port, addr=settings.api_bind)
    except OSError as error:
        fail(f"TOKENGINE_METRICS_PORT: {settings.api_bind}:{settings.metrics_port}: {error}")


@click.command()
def sink() -> None:
    """Run the Postgres sink (migrates first) until stopped."""
    from sinks.postgres import run_sink

    settings = settings_or_fail()
    database_url_or_fail(settings)
    serve_metrics(settings)
    run_sink(settings)


@click.command()
def connectors() -> None:
    """Run the chain watchers and payout executors until stopped."""
    from connectors.runner import run_connectors

    settings = settings_or_fail()
    if not settings.eth_rpc and not settings.btc_rpc:
        fail("TOKENGINE_ETH_RPC / TOKENGINE_BTC_RPC: neither is set (no chain to watch)")
    serve_metrics(settings)
    run_connectors(settings)


@click.command()
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


@click.group()
def topics() -> None:
    """Topic catalogue commands."""


@topics.command("create")
def topics_create() -> None:
    """Create every catalogue topic (idempotent)."""
    from topics.admin import create_topics

    settings = settings_or_fail()
    for name, outcome in sorted(
        create_topics(
            settings.kafka,
            settings.topic_prefix,
            replication_factor=settings.topic_replication_factor,
            min_insync_replicas=settings.topic_min_insync_replicas,
        ).items()
    ):
        click.echo(f"{outcome:8} {name}")


@topics.command("list")
def topics_list() -> None:
    """Print the catalogue."""
    for spec in catalogue.TOPICS:
        click.echo(f"{spec.name:24} p={spec.partitions:<2} key={spec.key:16} {spec.value_schema}")


@click.group()
def db() -> None:
    """The Postgres sink's database."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the schema migrations not applied yet."""
    from sinks.migrate import migrate

    applied = migrate(database_url_or_fail(settings_or_fail(need_kafka=False)))
    click.echo(f"applied: {', '.join(applied)}" if applied else "up to date")


@click.command("verify-ledger")
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


COMMANDS = (up, worker, sink, connectors, demo, topics, db, verify_ledger)
