"""The `tokengine` command line (click): run the engine and talk to its topics.

`running`: `up` (what `make run` runs), `worker`, `sink`, `connectors`, `demo`,
`topics create|list`, `db migrate`, `verify-ledger`. `publishing`: `submit`, `bind`,
`deposit-address`, `assign`, `price`, `breaker trip|reset|status`. `reading`: `tail`, `balances`,
`wallets`.
Bad arguments print one line naming the field and exit with code 2, producing nothing.
"""

from __future__ import annotations

import click

from tokengine.cli import publishing, reading, running


@click.group()
def main() -> None:
    """TokEngine: an exactly-once token ledger on Kafka."""


for command in (*running.COMMANDS, *publishing.COMMANDS, *reading.COMMANDS):
    main.add_command(command)
