"""Destinations as the chain and network an asset is paid on will take them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.addresses import address_problem, binding_problem, iban_is_valid
from core.assets import parse_assets

ASSETS = parse_assets(Path("core/assets.toml").read_text())  # BTC on regtest, no SegWit
MAINNET = parse_assets(
    Path("core/assets.toml")
    .read_text()
    .replace('network = "regtest"', 'network = "bitcoin"')
    .replace("segwit = false", "segwit = true")
)
CHECKSUMMED = "0x52908400098527886E0F7030069857D2E4169EE7"


@pytest.mark.parametrize(
    "address",
    [
        "0x52908400098527886e0F7030069857D2E4169EE7",  # mixed case, wrong EIP-55 checksum
        "0x0000000000000000000000000000000000000000",  # the zero address burns
        "52908400098527886e0f7030069857d2e4169ee7",  # no 0x
        "0x52908400098527886E0F7030069857D2E4169EE",  # 39 digits
        "0x52908400098527886E0F7030069857D2E4169EE7\n",
        " " + CHECKSUMMED,
    ],
)
def test_ethereum_destinations_that_would_lose_money_are_refused(address: str) -> None:
    assert address_problem(ASSETS["ETH"], address) is not None


@pytest.mark.parametrize(
    "address", [CHECKSUMMED, CHECKSUMMED.lower(), "0x" + CHECKSUMMED[2:].upper()]
)
def test_ethereum_destinations_with_a_valid_or_no_checksum_pass(address: str) -> None:
    assert address_problem(ASSETS["ETH"], address) is None


@pytest.mark.parametrize(
    "address",
    [
        "LhuDC4xdtfWUcz1Ww9VYaMv2ZrfYKYALGk",  # Litecoin
        "DHAPk8PewtxNhxS7TtHDhAuMKcU9LWyArL",  # Dogecoin
        "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",  # Bitcoin mainnet: on regtest it failed at payout
        "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",  # SegWit: the embedded node has none
        "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",  # testnet's prefix
        "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfX",  # checksum
        CHECKSUMMED,
    ],
)
def test_bitcoin_destinations_of_another_coin_or_network_are_refused(address: str) -> None:
    assert address_problem(ASSETS["BTC"], address) is not None


def test_bitcoin_destinations_of_the_configured_network_pass() -> None:
    assert address_problem(ASSETS["BTC"], "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn") is None
    assert address_problem(MAINNET["BTC"], "1BoatSLRHtKNngkdXEeobR76b53LETtpyT") is None
    assert address_problem(MAINNET["BTC"], "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq") is None
    assert address_problem(MAINNET["BTC"], "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn") is not None


def test_ibans_are_checked() -> None:
    assert iban_is_valid("AE070331234567890123456")
    assert iban_is_valid("GB33BUKB20201555555555")
    assert not iban_is_valid("GB33BUKB20201555555556")
    assert address_problem(ASSETS["xUSD"], "GB33BUKB20201555555556") is not None


@pytest.mark.parametrize("reference", ["", "AB", "TKE ALICE", "TKE-ALICE\n", "x" * 40])
def test_bank_deposit_references_are_long_enough_and_plain(reference: str) -> None:
    # the empty reference, bound, captured every credit without an end-to-end id
    assert binding_problem("bank", reference) is not None


def test_a_bank_deposit_reference_binds() -> None:
    assert binding_problem("bank", "TKE-ALICE") is None
