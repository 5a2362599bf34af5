"""Sweeps (the funnel) against a real node (anvil), the watcher and the worker.

Confirmed ETH deposits at four pool addresses: the three above `min_collection_amount`
end in the hot wallet until it would pass `max_balance`, the rest in the cold wallet; the
fourth stays. The sweeper is stopped once after recording a sweep and once after sending
one: the next one finishes both, sending nothing twice. Each sweep's fee is posted once,
and the wallets still hold exactly what the ledger says at every block (invariant 1), the
sweeps being recorded outflows (invariant 4). While the breaker is OPEN nothing is swept.
"""

from __future__ import annotations

import json
from decimal import Decimal

from bitcoinlib.keys import HDKey
from eth_account import Account
from prometheus_client import REGISTRY

from connectors.eth_sweeps import EthereumSweeper, SweeperWiring
from core.address_pool import PoolConfig, derive
from core.assets import load_assets
from tests.connectors.test_deposit_pool import next_second
from tests.connectors.test_ethereum import codec, mine, run_in_thread
from tests.connectors.test_wallet_holdings import block_of, holdings, mine_read, watcher_from
from tests.helpers import producer_for, read_topic, values
from tests.http import call
from tests.streams.test_ledger_worker import balances, wait_for
from tests.test_cli import cli
from topics import catalogue
from topics.breaker import breaker_record, publish_breaker_state

ACCOUNT_KEY = HDKey().subkey_for_path("m/44'/60'/0'")


def sweeper_for(settings, hot: str) -> EthereumSweeper:
    wiring = SweeperWiring.from_settings(settings, codec, load_assets(settings.assets_file))
    return EthereumSweeper(wiring, settings.eth_rpc, ACCOUNT_KEY.wif_private(), hot)


def sweep_results(settings, until, timeout_s: float = 180) -> list[dict]:
    """The sweep results read until `until(results)` holds or `timeout_s` passes (sweeps
    confirm twelve blocks deep; no short fixed reads: a fresh consumer's first fetch can
    outlast one on a busy broker)."""
    found = read_topic(
        settings, catalogue.SWEEP_RESULTS, until=lambda rs: until(values(rs)), timeout_s=timeout_s
    )
    return values(found)


def confirmed(results: list[dict]) -> list[dict]:
    return [r for r in results if r["status"] == "CONFIRMED"]


def wei(w3, address: str) -> int:
    return w3.eth.get_balance(address, "latest")


def test_deposits_are_swept_to_hot_then_cold_once_across_stops(chain, start_worker):
    w3, token, settings = chain
    cold = Account.create().address
    with settings.assets_file.open("a") as assets:
        assets.write(
            f'\n[pools.ethereum]\nxpub = "{ACCOUNT_KEY.wif_public()}"\nsize = 6\nlow_water = 1\n'
            f'max_size = 6\n\n[wallets.ethereum]\ncold = "{cold}"\n\n[wallets.ethereum.ETH]\n'
            'max_balance = "2.5"\nmin_collection_amount = "0.01"\n'
        )
    load_assets.cache_clear()
    pool = [derive(PoolConfig("ethereum", ACCOUNT_KEY.wif_public()), i) for i in range(6)]
    worker = start_worker(settings=settings)
    hot = Account.create().address
    watcher = watcher_from(settings, w3, hot, "eth-watcher-sweeps.json", w3.eth.block_number)
    threads = [run_in_thread(watcher)]
    url = f"{worker.api_url}/api/v1/accounts/%s/deposit-addresses"
    users = [f"sweep-u{n}" for n in range(4)]
    for n, user in enumerate(users):
        status, bound = call("POST", url % user, {"chain": "ethereum"})
        assert (status, bound["address"]) == (201, pool[n])
    next_second(bound["bound_at"])  # a block stamped with a binding's second is nobody's
    sender = w3.eth.accounts[2]
    for address, ether in zip(pool, ("1", "1", "1", "0.005"), strict=False):
        value = int(Decimal(ether).scaleb(18))
        w3.eth.send_transaction({"from": sender, "to": address, "value": value})
    mine_read(w3, watcher, 12)
    wait_for(lambda: all(balances(worker, u) for u in users), what="the four deposits credited")

    first = sweeper_for(settings, hot)
    try:
        first.view.start()
        first.view.wait_caught_up()
        plans = first.plans()
        assert [(p.address, p.to_role) for p in plans] == [
            (pool[0], "HOT"), (pool[1], "HOT"), (pool[2], "COLD")  # 0.005 ETH stays
        ]  # fmt: skip
        recorded = first.record(plans[0])  # stopped here: recorded, never sent
        sent = first.record(plans[1])
        assert first.send(sent)  # stopped here: sent, not reported
    finally:
        first.view.stop()
    assert w3.eth.get_transaction_count(pool[0]) == 0
    assert w3.eth.get_transaction_count(pool[1]) == 1

    def reported(destination: str) -> float:
        labels = {"chain": "ethereum", "destination": destination, "status": "CONFIRMED"}
        return REGISTRY.get_sample_value("token_engine_sweeps_total", labels) or 0.0

    before = (reported("HOT"), reported("COLD"))
    again = sweeper_for(settings, hot)
    threads.append(run_in_thread(again))
    try:
        # the next sweeper finishes the recorded sweep and makes the third (anvil mines
        # each at once); CONFIRMED once a sweep's block is as deep as a deposit's deepest
        # level (12)
        wait_for(
            lambda: [w3.eth.get_transaction_count(a) for a in pool[:3]] == [1, 1, 1],
            what="the three sweeps sent",
        )
        mine(w3, 12)
        done = sweep_results(settings, until=lambda rs: len(confirmed(rs)) == 3)
        assert len(confirmed(done)) == 3, "the three sweeps confirmed"
        by_id = {r["sweep_id"]: r for r in confirmed(done)}
        assert recorded["sweep_id"] in by_id and sent["sweep_id"] in by_id
        assert by_id[recorded["sweep_id"]]["tx_hash"] == recorded["tx_hash"]  # its bytes
        assert [w3.eth.get_transaction_count(a) for a in pool[:4]] == [1, 1, 1, 0]  # once each
        fees = {r["from_address"]: int(r["network_fee"].scaleb(18)) for r in by_id.values()}
        swept = [10**18 - fees[a] for a in pool[:3]]
        assert wei(w3, hot) == swept[0] + swept[1]  # up to max_balance 2.5
        assert wei(w3, cold) == swept[2]  # the rest
        assert [wei(w3, a) for a in pool[:4]] == [0, 0, 0, 5 * 10**15]
        assert {r["to_role"] for r in by_id.values()} == {"HOT", "COLD"}
        assert (reported("HOT") - before[0], reported("COLD") - before[1]) == (2, 1)

        def fees_booked(entries) -> list:
            return [e for e in values(entries) if e["kind"] == "sweep_network_fee"]

        entries = read_topic(
            settings, catalogue.LEDGER_ENTRIES, until=lambda es: len(fees_booked(es)) >= 3
        )
        booked = fees_booked(entries)
        assert sorted(e["postings"][0]["amount"] for e in booked) == sorted(
            r["network_fee"] for r in by_id.values()
        )  # each fee once, from operator:ETH:fees
        assert {e["postings"][0]["ledger_account"] for e in booked} == {"operator:ETH:fees"}

        # the wallets (hot, cold, the pool) hold what the ledger says at every block
        mine_read(w3, watcher, 2)
        last = w3.eth.block_number
        checked = holdings(settings, lambda rs: any(block_of(r) == last for r in rs))
        assert {r["level"] for r in checked} == {"OK"}, [r for r in checked if r["level"] != "OK"]
        final = next(r for r in checked if block_of(r) == last)
        total = sum(wei(w3, a) for a in (hot, cold, *pool))
        assert final["bank_balance"] == final["ledger_balance"] == Decimal(total).scaleb(-18)

        def outflow_checks_of(records) -> list[dict]:
            return [r for r in values(records) if r["check_id"].startswith("wallet:")]

        outflow_checks = outflow_checks_of(
            read_topic(
                settings,
                catalogue.RECONCILIATION_RESULTS,
                until=lambda rs: len(outflow_checks_of(rs)) >= 3,
            )
        )
        assert len(outflow_checks) == 3 and {r["level"] for r in outflow_checks} == {"OK"}

        # the operator's view: GET /api/v1/wallets and `tokengine wallets` say the same
        def reported_wallets():
            status, body = call("GET", f"{worker.api_url}/api/v1/wallets")
            shown = {(r["destination"], r["status"]): r for r in body.get("sweeps", [])}
            eth = [h for h in body.get("holdings", []) if h["asset"] == "ETH"]
            at_last = eth and eth[0]["block"] == last
            done = status == 200 and at_last and ("COLD", "CONFIRMED") in shown
            return done and (body, shown, eth[0])

        body, shown, eth_holdings = wait_for(reported_wallets, what="the wallets reported")
        assert body["cold_wallets"] == {"ethereum": cold}
        assert Decimal(eth_holdings["chain_balance"]) == Decimal(total).scaleb(-18)
        assert eth_holdings["level"] == "OK" and Decimal(eth_holdings["difference"]) == 0
        counts = [shown[(to, "CONFIRMED")]["count"] for to in ("HOT", "COLD")]
        assert counts == [2, 1]
        fees = sum(Decimal(r["network_fees"]) for r in shown.values())
        assert fees == sum(r["network_fee"] for r in by_id.values())
        printed = cli(settings, "wallets", "--json")
        assert printed.returncode == 0, printed.stderr
        assert json.loads(printed.stdout)["sweeps"] == body["sweeps"]
    finally:
        again.stop()
        threads[1].join(10)

    # the breaker OPEN: a new deposit, confirmed, stays where it is
    breaker = producer_for(settings, catalogue.BREAKER_STATE)
    opened = breaker_record("global", "OPEN", "CRITICAL", "test", "pytest")
    publish_breaker_state(breaker, settings.topic_prefix, codec, opened)
    w3.eth.send_transaction({"from": sender, "to": pool[4], "value": 10**18})
    mine(w3, 12)
    halted = sweeper_for(settings, hot)
    try:
        halted.view.start()
        wait_for(halted.halted, what="the sweeper sees the breaker OPEN")
        assert [p.address for p in halted.plans()] == [pool[4]]  # there is one to make
        halted.step()
        one_more = sweep_results(settings, lambda rs: len(rs) > len(done), timeout_s=10)
        assert len(one_more) == len(done)  # nothing recorded
        assert w3.eth.get_transaction_count(pool[4]) == 0  # nothing sent
    finally:
        halted.view.stop()

    # a cold wallet that refuses ETH (a contract): the node says the transfer would fail,
    # so nothing is sent there (no fee burnt on a revert), and the sweeper goes on
    text = settings.assets_file.read_text().replace(cold, token.address)
    settings.assets_file.write_text(text)
    load_assets.cache_clear()
    refusing = sweeper_for(settings, hot)
    try:
        refusing.view.start()
        refusing.view.wait_caught_up()
        assert refusing.plans() == []  # pool[4]'s 1 ETH would go to the cold wallet
    finally:
        refusing.view.stop()
        watcher.stop()
        threads[0].join(10)
