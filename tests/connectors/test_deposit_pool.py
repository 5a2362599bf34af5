"""Deposit-address pools against real nodes (anvil, the regtest bitcoind), the watchers and
the worker's API.

Twenty addresses derived from an xpub; a user binds one and keeps it while the binding
lives; a deposit belongs to the account bound at its block's time: one before expiry
credits the first holder, one after it (before anyone binds the address again) and one to
an address nobody was bound to wait in suspense, one after the address is bound to
another account credits that one; a deposit in suspense is credited once an operator
assigns it. The expiry is the configured `binding_seconds`, and the clock is awaited as a
condition (blocks are stamped with whole seconds: one stamped with the second a binding
begins or ends in is nobody's, so the test sends in the next second).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bitcoinlib.keys import HDKey

from connectors.bitcoin import BitcoinRpc, BitcoinWatcher
from connectors.chain_watcher import WatcherWiring
from core.address_pool import PoolConfig, derive
from core.assets import load_assets
from core.observations import deposit_id
from tests.connectors.test_bitcoin import btc_settings, node  # noqa: F401
from tests.connectors.test_ethereum import codec, run_in_thread, watcher_for
from tests.helpers import produce, read_topic, values
from tests.http import call, call_text
from tests.streams.test_ledger_worker import balances, wait_for
from topics import catalogue

BINDING_SECONDS = 20  # long enough for the 19 bindings below on a loaded machine
XPUB = HDKey().subkey_for_path("m/44'/60'/0'").wif_public()


def next_second(moment: str) -> None:
    """Wait for the clock (the node stamps blocks with it) to be past `moment`'s second."""
    second = datetime.fromisoformat(moment).replace(microsecond=0) + timedelta(seconds=1)
    wait_for(lambda: datetime.now(UTC) >= second, BINDING_SECONDS + 5, f"the clock at {second}")


def eth_balance(worker, account: str) -> Decimal:
    return Decimal(balances(worker, account).get("ETH", {}).get("balance", "0"))


def test_pool_bindings_expiry_rebinding_and_suspense(chain, start_worker):  # noqa: F811
    w3, _token, settings = chain
    with settings.assets_file.open("a") as assets:
        assets.write(f'\n[pools.ethereum]\nxpub = "{XPUB}"\nsize = 20\nlow_water = 1\n'
                     f"max_size = 20\nbinding_seconds = {BINDING_SECONDS}\n")  # fmt: skip
    load_assets.cache_clear()
    pool = [derive(PoolConfig("ethereum", XPUB), i) for i in range(20)]
    worker = start_worker(settings=settings)
    url = f"{worker.api_url}/api/v1/accounts/%s/deposit-addresses"
    watcher = watcher_for(settings, w3)
    run_in_thread(watcher)
    sender = w3.eth.accounts[1]

    def bind(account: str) -> tuple[int, dict]:
        return call("POST", url % account, {"chain": "ethereum"})

    def send(address: str, ether: str) -> str:
        wei = int(Decimal(ether).scaleb(18))
        tx = w3.eth.send_transaction({"from": sender, "to": address, "value": wei})
        return deposit_id(load_assets(settings.assets_file)["ETH"], tx.to_0x_hex(), 0)

    try:
        status, alice = bind("alice")
        assert status == 201 and alice["address"] == pool[0] and alice["index"] == 0
        assert bind("alice") == (200, alice)  # the same address while the binding lives
        assert bind("suspense")[0] == 400  # the engine's own accounts hold no address
        next_second(alice["bound_at"])  # a block stamped with the binding's second is nobody's
        send(pool[0], "0.01")  # mined at once: inside alice's binding
        unbound = send(pool[19], "0.002")  # an address nobody holds yet
        wait_for(lambda: eth_balance(worker, "alice") == Decimal("0.01"), what="alice credited")

        others = [bind(f"u{n}") for n in range(1, 20)]
        assert {s for s, _ in others} == {201}
        assert sorted(b["index"] for _, b in others) == list(range(1, 20))
        status, refused = bind("carol")
        assert (status, refused["error"]) == (503, "pool_exhausted")  # 20 of 20 bound
        metrics = call_text(f"{worker.api_url}/metrics")
        assert 'token_engine_deposit_pool_fresh{chain="ethereum"} 0.0' in metrics

        next_second(alice["expires_at"])
        late = send(pool[0], "0.003")  # after alice's binding ended: nobody's
        status, bob = bind("bob")  # the address expired longest ago
        assert (status, bob["address"]) == (201, pool[0])
        next_second(bob["bound_at"])
        send(pool[0], "0.004")
        wait_for(lambda: eth_balance(worker, "bob") == Decimal("0.004"), what="bob credited")
        assert eth_balance(worker, "alice") == Decimal("0.01")  # never alice's late one

        alerts = read_topic(
            settings, catalogue.ALERTS,
            until=lambda rs: sum(r["value"]["kind"] == "deposit.in_suspense" for r in rs) >= 2,
        )  # fmt: skip
        held = {a["details"]["deposit_id"] for a in values(alerts)
                if a["kind"] == "deposit.in_suspense"}  # fmt: skip
        assert held == {unbound, late}

        assignment = {"deposit_id": unbound, "asset": "ETH", "amount": "0.002",
                      "account": "carol", "note": "ticket 41: carol sent it"}  # fmt: skip
        assert call("POST", f"{worker.api_url}/api/v1/suspense/assignments", assignment)[0] == 202
        wait_for(lambda: eth_balance(worker, "carol") == Decimal("0.002"), what="assigned")
        again = {**assignment, "account": "mallory"}  # a deposit is assigned once
        assert call("POST", f"{worker.api_url}/api/v1/suspense/assignments", again)[0] == 202
        wrong = {**assignment, "deposit_id": late, "amount": "0.5"}  # not what suspense holds
        assert call("POST", f"{worker.api_url}/api/v1/suspense/assignments", wrong)[0] == 202
        letters = read_topic(settings, catalogue.DEAD_LETTERS, until_count=2)
        assert sorted(d["reason"] for d in values(letters)) == [
            "conflicting_duplicate", "invalid_amount"]  # fmt: skip
        assert eth_balance(worker, "mallory") == 0 and eth_balance(worker, "carol") == Decimal(
            "0.002"
        )
    finally:
        watcher.stop()
        load_assets.cache_clear()


def test_a_bitcoin_pool_address_credits_its_holder_and_an_unbound_one_waits(
    node, btc_settings, start_worker  # noqa: F811
):  # fmt: skip
    url, rpc = node
    settings = btc_settings
    key = HDKey(network="testnet").subkey_for_path("m/44'/1'/0'")
    with settings.assets_file.open("a") as assets:
        assets.write(f'\n[pools.bitcoin]\nxpub = "{key.wif_public()}"\nsize = 5\nlow_water = 2\n')
    load_assets.cache_clear()
    config = load_assets(settings.assets_file).pools["bitcoin"]
    worker = start_worker(settings=settings)
    price = {"asset": "BTC", "usd_price": Decimal("50000"), "as_of": datetime.now(UTC)}
    produce(settings, catalogue.PRICES, "BTC", price)
    wiring = WatcherWiring.from_settings(
        settings, codec, load_assets(settings.assets_file), "btc-watcher.json",
        rpc("getblockcount") + 1,
    )  # fmt: skip
    watcher = BitcoinWatcher(wiring, BitcoinRpc(url, rpc.cookie_file))
    run_in_thread(watcher)
    miner = rpc("getnewaddress")
    try:
        status, gina = call(
            "POST", f"{worker.api_url}/api/v1/accounts/gina/deposit-addresses", {"chain": "bitcoin"}
        )
        assert status == 201 and gina["address"] == derive(config, 0)
        assert rpc("validateaddress", gina["address"])["isvalid"]  # the node's own check
        paid = rpc("sendtoaddress", gina["address"], 0.001)  # 50 USD: level 0
        unbound = rpc("sendtoaddress", derive(config, 4), 0.0015)
        next_second(gina["bound_at"])  # the block is stamped after the binding began
        rpc("generatetoaddress", 1, miner)
        wait_for(lambda: btc_balance(worker, "gina") == Decimal("0.001"), what="gina credited")
        alerts = read_topic(
            settings, catalogue.ALERTS,
            until=lambda rs: any(r["value"]["kind"] == "deposit.in_suspense" for r in rs),
        )  # fmt: skip
        [held] = [a for a in values(alerts) if a["kind"] == "deposit.in_suspense"]
        assert held["details"]["deposit_id"].startswith(f"bitcoin:{unbound}:")
        assert paid != unbound
    finally:
        watcher.stop()
        load_assets.cache_clear()


def btc_balance(worker, account: str) -> Decimal:
    return Decimal(balances(worker, account).get("BTC", {}).get("balance", "0"))
