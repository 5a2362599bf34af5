"""Demo steps on the chains: deposit addresses from the pool and prices, on-chain deposits
credited at their security level (one to an unbound pool address held in suspense until an
operator assigns it), the sweeps of deposit addresses to the hot and cold wallets, and a
bitcoin payout signed and sent on regtest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from eth_account import Account

from core.address_pool import derive
from core.assets import load_assets
from core.fields import SUSPENSE_ACCOUNT
from tokengine.demo.harness import Demo, DemoFailure, console
from tokengine.demo.scenario import AED_ACCOUNT, USD_ACCOUNT
from topics import catalogue
from topics.tail import read_to_end


def configure(demo: Demo) -> None:
    demo.step("Operator configures assets; users get deposit addresses")
    btc = "BTC (regtest bitcoind: Bitcoin SV node behaviour over the Bitcoin Core RPC)"
    console.print(
        f"   assets: ETH, TOK (ERC20 at {demo.token.address}, compiled offline with solc), "
        f"xUSD ({USD_ACCOUNT}), xAED ({AED_ACCOUNT}), "
        + (btc if demo.btc else "BTC: no regtest node installed")
    )
    demo.addresses = {}
    now = datetime.now(UTC)
    for user in ("alice", "bob", "carol"):
        path = f"/api/v1/accounts/{user}/deposit-addresses"
        status, bound = demo.api("POST", path, {"chain": "ethereum"})
        if status != 201:
            raise DemoFailure(f"{user}'s deposit address: {status} {bound}")
        again = demo.api("POST", path, {"chain": "ethereum"})
        demo.report.check(f"{user} keeps one pool address", again == (200, bound),
                          f"index {bound['index']}, bound until {bound['expires_at']}")  # fmt: skip
        demo.addresses[user] = address = bound["address"]
        reference = f"TKE-{user.upper()}"
        bank = {"chain": "bank", "address": reference, "account_id": user, "bound_at": now}
        demo.produce(catalogue.ADDRESS_BINDINGS, f"bank:{reference}", bank)
        console.print(f"   {user}: {address} (pool index {bound['index']}, bank reference "
                      f"{reference})")  # fmt: skip
    # blocks are stamped with whole seconds: one stamped with the second a binding began in
    # may have been made before it, and is nobody's (suspense); deposits start after it
    began = datetime.fromisoformat(bound["bound_at"]).replace(microsecond=0)
    demo.wait(lambda: datetime.now(UTC) >= began + timedelta(seconds=1), "the next second")
    for asset, usd in (("ETH", "3000"), ("TOK", "1"), ("BTC", "50000")):
        price = {"asset": asset, "usd_price": Decimal(usd), "as_of": now}
        demo.produce(catalogue.PRICES, asset, price)
    if demo.btc:
        demo.btc("generatetoaddress", 101, demo.btc("getnewaddress"))  # spendable coins
        demo.btc_address = demo.btc("getnewaddress")
        binding = {
            "chain": "bitcoin",
            "address": demo.btc_address,
            "account_id": "dave",
            "bound_at": now,
        }
        demo.produce(catalogue.ADDRESS_BINDINGS, f"bitcoin:{demo.btc_address}", binding)
        console.print(f"   dave: {demo.btc_address} (bitcoin)")
    keystore = json.loads(demo.settings.eth_keystore.read_text())
    key = bytes(Account.decrypt(keystore, demo.settings.eth_keystore_password))
    demo.hot_wallet = Account.from_key(key).address
    demo.token.functions.transfer(demo.hot_wallet, 100_000 * 10**6).transact(
        {"from": demo.w3.eth.accounts[0]}
    )
    console.print("   prices: ETH 3000 USD, TOK 1 USD; the hot wallet holds TOK for payouts")


def chain_deposits(demo: Demo) -> None:
    demo.step("On-chain deposits, each credited at its security level")
    sender = demo.w3.eth.accounts[1]
    deposits = [  # carol's first: the sweeper's transactions mine blocks of their own
        ("carol", "ETH", Decimal("2")),  # 6000 USD
        ("alice", "ETH", Decimal("0.005")),  # 15 USD
        ("bob", "ETH", Decimal("0.1")),  # 300 USD
        ("alice", "TOK", Decimal("500")),  # 500 USD
    ]
    for user, asset, amount in deposits:
        before = demo.balance(user, asset)
        if asset == "ETH":
            tx = demo.w3.eth.send_transaction(
                {"from": sender, "to": demo.addresses[user], "value": int(amount.scaleb(18))}
            )
        else:
            tx = demo.token.functions.transfer(
                demo.addresses[user], int(amount.scaleb(6))
            ).transact({"from": demo.w3.eth.accounts[0]})
        demo.wait(lambda h=tx: demo.observed(h.to_0x_hex()), "the watcher to see it")
        observation = demo.observed(tx.to_0x_hex())
        required = observation["confirmations_required"]
        credited_early = False
        while (current := demo.observed(tx.to_0x_hex()))["status"] != "CONFIRMED":
            credited_early |= demo.balance(user, asset) != before
            demo.mine(1)
            demo.wait(  # the watcher republishes at each new confirmation
                lambda h=tx, c=current: (
                    demo.observed(h.to_0x_hex())["confirmations"] > c["confirmations"]
                ),
                "the next confirmation",
            )
        final = demo.observed(tx.to_0x_hex())
        demo.wait(lambda u=user, a=asset, b=before: demo.balance(u, a) > b, "the credit")
        demo.report.check(
            f"{user} {amount} {asset} ({amount * (3000 if asset == 'ETH' else 1)} USD)",
            not credited_early and demo.balance(user, asset) - before == amount,
            f"level {required} confirmations, credited at {final['confirmations']}",
        )

    suspense_deposit(demo)
    if demo.btc:
        btc_deposit(demo)


def suspense_deposit(demo: Demo) -> None:
    """0.004 ETH to a pool address nobody holds: held in suspense, assigned by an operator."""
    config = load_assets(demo.settings.assets_file).pools["ethereum"]
    address = derive(config, config.size - 1)  # the pool's last: never handed out here
    before = demo.balance("erin", "ETH")
    tx = demo.w3.eth.send_transaction(
        {"from": demo.w3.eth.accounts[1], "to": address, "value": 4 * 10**15}
    )
    observed = demo.wait(lambda: demo.observed(tx.to_0x_hex()), "the watcher to see it")
    held = observed["account_id"] == SUSPENSE_ACCOUNT
    demo.wait(lambda: demo.alerted("deposit.in_suspense", observed["deposit_id"]), "its alert")
    assignment = {"deposit_id": observed["deposit_id"], "asset": "ETH", "amount": "0.004",
                  "account": "erin", "note": "demo: erin's ticket names the tx"}  # fmt: skip
    status, _ = demo.api("POST", "/api/v1/suspense/assignments", assignment)
    demo.wait(lambda: demo.balance("erin", "ETH") > before, "the assignment credited")
    demo.report.check(
        "a deposit to an unbound pool address waits in suspense until assigned",
        held and status == 202 and demo.balance("erin", "ETH") - before == Decimal("0.004"),
        f"{address}: suspense, alert deposit.in_suspense, assigned to erin by an operator",
    )


def sweeps(demo: Demo) -> None:
    """The funnel: the confirmed ETH at deposit addresses moved by the sweeper, bob's to the
    hot wallet, carol's (it would fill the hot one above max_balance) to the cold wallet;
    alice's 0.005 ETH, below min_collection_amount, stays where it is."""
    demo.step("Sweeps: deposit addresses to the hot wallet, the overflow to the cold wallet")
    demo.mine(12)  # every deposit at the deepest security level, where sweeps begin
    wanted = {demo.addresses["bob"], demo.addresses["carol"]}

    def swept() -> dict | None:
        results = read_to_end(demo.settings, catalogue.SWEEP_RESULTS, timeout_s=5)
        done = {r["from_address"]: r for r in results if r["status"] == "CONFIRMED"}
        return done if wanted <= set(done) else None

    # a sweep is CONFIRMED once its own block is as deep: the demo mines while it waits
    done = demo.wait(lambda: demo.mine(1) or swept(), "the sweeper")
    for user in ("bob", "carol"):
        sweep = done[demo.addresses[user]]
        console.print(
            f"   {user}: {sweep['amount']} ETH -> {sweep['to_role'].lower()} wallet "
            f"{sweep['to_address']} (network fee {sweep['network_fee']}, {sweep['tx_hash'][:14]}…)"
        )
    bob, carol = done[demo.addresses["bob"]], done[demo.addresses["carol"]]
    cold = Decimal(demo.w3.eth.get_balance(demo.cold_wallet)).scaleb(-18)
    left = Decimal(demo.w3.eth.get_balance(demo.addresses["alice"])).scaleb(-18)
    demo.report.check(
        "sweeps: bob's deposit to the hot wallet, carol's above max_balance to the cold one",
        (bob["to_role"], carol["to_role"]) == ("HOT", "COLD") and cold == carol["amount"],
        f"cold wallet holds {cold} ETH; alice's {left} ETH is below min_collection_amount",
    )


def btc_deposit(demo: Demo) -> None:
    """0.015 BTC = 750 USD: level "< 1000: 2"; the demo mines each block."""
    txid = demo.btc("sendtoaddress", demo.btc_address, 0.015)
    miner = demo.btc("getnewaddress")
    credited_early = False
    confirmations = 0
    while True:
        demo.btc("generatetoaddress", 1, miner)
        confirmations += 1
        observed = demo.wait(
            lambda c=confirmations: (o := demo.observed(txid)) and o["confirmations"] >= c and o,
            "the bitcoin watcher",
        )
        if observed["status"] == "CONFIRMED":
            break
        credited_early |= demo.balance("dave", "BTC") != 0
    demo.wait(lambda: demo.balance("dave", "BTC") > 0, "the BTC credit")
    demo.report.check(
        "dave 0.015 BTC (750 USD)",
        not credited_early and demo.balance("dave", "BTC") == Decimal("0.015"),
        f"level {observed['confirmations_required']} confirmations, "
        f"credited at {observed['confirmations']}",
    )


def btc_withdrawal(demo: Demo) -> None:
    """dave pays 0.005 BTC out: signed by the executor, sent, mined by the demo."""
    destination = demo.btc("getnewaddress")
    demo.withdraw("demo-w5", "dave", "BTC", "0.005", destination)

    def submitted() -> bool:
        return any(
            r["payout_id"] == "po:dave:demo-w5"
            for r in read_to_end(demo.settings, catalogue.PAYOUT_RESULTS, timeout_s=5)
        )

    demo.wait(submitted, "the BTC payout sent")
    demo.btc("generatetoaddress", 1, demo.btc("getnewaddress"))
    done = demo.result("demo-w5")
    paid = demo.payout_result("po:dave:demo-w5")
    received = demo.btc("getreceivedbyaddress", destination, 1)
    demo.report.check(
        "dave withdraws 0.005 BTC (fee 0.0001)",
        done["status"] == "COMPLETED"
        and received == Decimal("0.005")
        and demo.balance("dave", "BTC") == Decimal("0.0099"),
        f"signed and sent on regtest, network fee {paid['network_fee']} BTC to the operator",
    )
