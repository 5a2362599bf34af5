"""Fixtures of the chain connectors' tests: an anvil node per module, and a fresh token
with the assets that name it (ETH and TOK, with USD prices) per test."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from web3 import Web3

from standins.solidity import deploy_token
from tests.helpers import produce
from tokengine.chain_nodes import start_anvil
from topics import catalogue

LEVELS = '["20:0", "50:1", "200:2", "500:3", "1000:4", "2000:5", "3000:6", "5000:8", "*:12"]'


@pytest.fixture(scope="module")
def anvil():
    workdir = Path(tempfile.mkdtemp(prefix="tokengine-anvil-"))
    url, process = start_anvil(workdir)  # automine: one block per transaction
    yield url
    process.stop()


@pytest.fixture
def chain(anvil, settings):
    """The node, a freshly deployed token, and assets that name it."""
    w3 = Web3(Web3.HTTPProvider(anvil))
    token = deploy_token(w3, w3.eth.accounts[0], "TOK", 6, 10**15)
    assets = settings.data_dir / "assets.toml"
    assets.parent.mkdir(parents=True, exist_ok=True)
    assets.write_text(
        f"""
[assets.ETH]
chain = "ethereum"
decimals = 18
fee_fixed = "0.0005"
failure_fee = "0.0001"
min_withdrawal = "0.001"
rounding_tolerance = "0.000000000000000001"
confirmation_levels_usd = {LEVELS}

[assets.TOK]
chain = "ethereum"
token_standard = "erc20"
contract = "{token.address}"
decimals = 6
fee_fixed = "1"
min_withdrawal = "1"
rounding_tolerance = "0.000001"
confirmation_levels_usd = {LEVELS}
"""
    )
    settings = settings.with_overrides(assets_file=assets, eth_rpc=anvil)
    for asset, usd in (("ETH", "3000"), ("TOK", "1")):
        price = {"asset": asset, "usd_price": Decimal(usd), "as_of": datetime.now(UTC)}
        produce(settings, catalogue.PRICES, asset, price)
    return w3, token, settings
