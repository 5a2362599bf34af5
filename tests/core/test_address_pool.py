"""Deposit-address pools: derivation from an xpub, binding expiry, attribution by block time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bitcoinlib.encoding import addr_base58_to_pubkeyhash
from bitcoinlib.keys import HDKey
from eth_account import Account

from core.address_pool import Pool, PoolConfig, derive
from core.addresses import binding_problem
from core.assets import AssetConfigError, parse_assets
from core.bindings import Bindings, epoch_ms

SEED = HDKey("xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPG"
             "JxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi", network="bitcoin")  # fmt: skip
ACCOUNT = SEED.subkey_for_path("m/44'/60'/0'")
XPUB = ACCOUNT.wif_public()
T = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
MS = epoch_ms(T) or 0


def eth_pool(size=20, low_water=5, max_size=100_000, seconds=3600) -> Pool:
    config = PoolConfig("ethereum", XPUB, size, low_water, max_size, seconds)
    return Pool(config, Bindings("ethereum", str.lower))


def binding(address, account, at: datetime, seconds: int | None = 3600) -> dict:
    expires = None if seconds is None else at + timedelta(seconds=seconds)
    return {"chain": "ethereum", "address": address, "account_id": account, "bound_at": at,
            "expires_at": expires}  # fmt: skip


def test_twenty_addresses_derived_from_the_xpub_are_the_wallets_own():
    pool = eth_pool()
    addresses = pool.addresses()
    assert len(addresses) == 20 == len(set(addresses))
    for index in (0, 7, 19):  # the same keys a wallet holding the private key derives
        private = ACCOUNT.subkey_for_path(f"0/{index}").private_hex
        assert addresses[index] == Account.from_key(private).address
    bitcoin = PoolConfig("bitcoin", XPUB, network="regtest")
    for index in (0, 3):
        address = derive(bitcoin, index)
        assert binding_problem("bitcoin", address, "regtest") is None
        assert address[0] in "mn"  # a regtest node's (testnet's) P2PKH prefix
        key = ACCOUNT.subkey_for_path(f"0/{index}")
        assert addr_base58_to_pubkeyhash(address, as_hex=False) == key.hash160


def test_the_same_address_while_the_binding_lives_then_another_account_gets_a_fresh_one():
    pool = eth_pool()
    first, already = pool.pick("alice", MS)
    assert (first, already) == (pool.addresses()[0], False)
    assert pool.bindings.fold(binding(first, "alice", T))
    assert pool.pick("alice", MS + 1000) == (first, True)
    bob, _ = pool.pick("bob", MS + 1000)
    assert bob == pool.addresses()[1]
    # alice's binding expired: she gets a new one, and it is never her old address while
    # fresh ones remain (reuse comes last)
    later = MS + 3600 * 1000 + 1
    assert pool.pick("alice", later) == (pool.addresses()[1], False)
    assert pool.fresh() == 19


def test_an_expired_address_is_reused_only_when_the_pool_has_no_fresh_one():
    pool = eth_pool(size=2, low_water=1, max_size=2)
    a, _ = pool.pick("alice", MS)
    pool.bindings.fold(binding(a, "alice", T, seconds=60))
    b, _ = pool.pick("bob", MS)
    pool.bindings.fold(binding(b, "bob", T, seconds=120))
    with pytest.raises(ValueError, match="no free address"):
        pool.pick("carol", MS + 1000)
    assert pool.pick("carol", MS + 200_000) == (a, False)  # expired longest ago


def test_the_pool_grows_to_keep_its_low_water_of_fresh_addresses():
    pool = eth_pool(size=3, low_water=2)
    for n, account in enumerate(("a1", "a2", "a3")):
        address, _ = pool.pick(account, MS)
        pool.bindings.fold(binding(address, account, T + timedelta(seconds=n)))
    assert len(pool.addresses()) == 5 and pool.fresh() == 2


def test_a_deposit_belongs_to_the_account_bound_for_the_whole_second_of_its_block():
    bindings = Bindings("ethereum", str.lower)
    address = eth_pool().addresses()[0]
    bindings.fold(binding(address, "alice", T, seconds=60))
    assert not bindings.fold(binding(address, "bob", T + timedelta(seconds=30)))  # still alice's
    assert bindings.fold(binding(address, "bob", T + timedelta(seconds=61, milliseconds=300)))
    at = lambda seconds: bindings.account_at(address, MS + seconds * 1000)  # noqa: E731
    assert at(-5) is None  # before the first binding: suspense
    assert at(0) == at(59) == "alice"
    assert at(60) is None  # expired, not bound again yet
    assert at(61) is None  # bob's binding began inside that second: made before it, maybe
    assert at(62) == at(3660) == "bob"
    assert at(3661) is None  # bob's ends inside it
    bindings.fold(binding(address, "carol", T + timedelta(seconds=3661, milliseconds=500)))
    assert at(3661) is None and at(3662) == "carol"


def test_a_binding_by_hand_holds_for_every_block_and_never_moves():
    bindings = Bindings("ethereum", str.lower)
    address = eth_pool().addresses()[0]
    bindings.fold(binding(address, "alice", T, seconds=None))
    assert bindings.account_at(address, MS - 86_400_000) == "alice"
    assert not bindings.fold(binding(address, "bob", T + timedelta(days=400)))
    assert bindings.account_at(address, MS + 10**12) == "alice"


def test_bad_pool_configuration_is_refused_whole():
    eth = '[assets.ETH]\nunit = "ETH"\nchain = "ethereum"\ndecimals = 18\n'
    good = parse_assets(eth + f'[pools.ethereum]\nxpub = "{XPUB}"\nbinding_seconds = 60\n')
    assert good.pools["ethereum"].binding_ms == 60_000
    for bad in (
        f'[pools.ethereum]\nxpub = "{ACCOUNT.wif_private()}"\n',  # a private key
        '[pools.ethereum]\nxpub = "xpub-nonsense"\n',
        f'[pools.ethereum]\nxpub = "{XPUB}"\nsize = 0\n',
        f'[pools.ethereum]\nxpub = "{XPUB}"\nsize = 5\nlow_water = 6\n',
        f'[pools.ethereum]\nxpub = "{XPUB}"\nexpiry = 5\n',
        f'[pools.dogecoin]\nxpub = "{XPUB}"\n',
        "[wallets]\nhot = 1\n",
    ):
        with pytest.raises(AssetConfigError):
            parse_assets(eth + bad)
