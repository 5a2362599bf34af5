"""The asset configuration: one that contradicts itself is refused whole; one that is only
incomplete refuses what it cannot do (`payouts_unavailable`)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.assets import AssetConfigError, parse_assets

ETH = """
[assets.ETH]
chain = "ethereum"
decimals = 18
"""


def test_the_shipped_configuration_loads_and_says_what_it_cannot_pay() -> None:
    assets = parse_assets(Path("core/assets.toml").read_text())
    # USDT shipped with contract = "": its payouts went out as native ETH
    assert "no erc20 contract" in assets["USDT"].payouts_unavailable
    assert assets["USDT"].deposits_unavailable
    # nothing executes bank payouts: their withdrawals stayed reserved for ever
    assert assets["xAED"].payouts_unavailable and assets["xUSD"].payouts_unavailable
    assert assets["ETH"].payouts_unavailable is None and assets["ETH"].is_native
    assert assets["BTC"].network == "regtest"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[assets.USDT]\nchain = "ethereum"\ndecimals = 6\n', "native coin of ethereum has 18"),
        ('[assets.ETH2]\nchain = "ethereum"\ndecimals = 18\n', "both the native coin"),
        (
            '[assets.T]\nchain = "ethereum"\ndecimals = 6\ncontract = "0x' + "1" * 40 + '"\n',
            "needs its token_standard",
        ),
        (
            '[assets.T]\nchain = "bitcoin"\ntoken_standard = "erc20"\ndecimals = 8\n',
            "no token standard",
        ),
        (
            '[assets.T]\nchain = "ethereum"\ntoken_standard = "erc20"\ndecimals = 6\n'
            'contract = "0x1234"\n',
            "not an address",
        ),
        ('[assets.T]\nchain = "bank"\ndecimals = 2\n', "needs bank_account"),
        (
            '[assets.T]\nchain = "bank"\ndecimals = 2\nbank_account = "../x"\ncurrency = "USD"\n',
            "bank_account",
        ),
        (
            '[assets.T]\nchain = "ethereum"\ntoken_standard = "erc20"\ndecimals = 6\n'
            'contrct = "0x1"\n',
            "unknown setting 'contrct'",
        ),
        (
            '[assets.T]\nchain = "ethereum"\ntoken_standard = "erc20"\ndecimals = 6\n'
            'confirmation_levels_usd = ["50:1", "20:0", "*:3"]\n',
            "ascending",
        ),
        (
            '[assets.T]\nchain = "ethereum"\ntoken_standard = "erc20"\ndecimals = 6\n'
            'confirmation_levels_usd = ["20:0"]\n',
            "'*'",
        ),
        (
            '[assets.T]\nchain = "ethereum"\ntoken_standard = "erc20"\ndecimals = 6\n'
            "fee_fixed = 0.5\n",
            "fee_fixed",
        ),
        (
            '[assets.T]\nchain = "ethereum"\ntoken_standard = "erc20"\ndecimals = 6\n'
            'fee_fixed = "0.0000001"\n',
            "fee_fixed",
        ),
        (
            '[assets.T]\nchain = "ethereum"\ntoken_standard = "erc20"\ndecimals = 6\n'
            'payouts_enabled = "yes"\n',
            "payouts_enabled",
        ),
        ('[assets.BTC]\nchain = "bitcoin"\ndecimals = 8\nnetwork = "litecoin"\n', "network"),
        ('[assets.T]\nchain = "dogechain"\ndecimals = 8\n', "unknown chain"),
    ],
)
def test_a_configuration_that_contradicts_itself_is_refused(extra: str, message: str) -> None:
    with pytest.raises(AssetConfigError, match=message):
        parse_assets(ETH + extra)


def test_two_assets_on_one_contract_or_bank_account_are_refused() -> None:
    token = '[assets.{}]\nchain = "ethereum"\ntoken_standard = "erc20"\ndecimals = 6\n'
    contract = 'contract = "0x' + "ab" * 20 + '"\n'
    with pytest.raises(AssetConfigError, match="contract"):
        parse_assets(token.format("A") + contract + token.format("B") + contract)
    bank = '[assets.{}]\nchain = "bank"\ndecimals = 2\nbank_account = "GB33"\ncurrency = "USD"\n'
    with pytest.raises(AssetConfigError, match="bank account"):
        parse_assets(bank.format("A") + bank.format("B"))


def test_the_engine_refuses_to_start_on_such_a_configuration(tmp_path) -> None:
    import subprocess
    import sys

    broken = tmp_path / "assets.toml"
    broken.write_text(ETH + '[assets.USDT]\nchain = "ethereum"\ndecimals = 6\n')
    ran = subprocess.run(
        [sys.executable, "-m", "tokengine", "up"],
        env={"PATH": "/usr/bin:/bin", "TOKENGINE_ASSETS_FILE": str(broken)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2
    assert "native coin of ethereum has 18 decimals" in ran.stderr


COLD = "0x52908400098527886E0F7030069857D2E4169EE7"
SWEPT = (
    ETH
    + f"""
[wallets.ethereum]
cold = "{COLD}"
[wallets.ethereum.ETH]
max_balance = "2.5"
min_collection_amount = "0.01"
"""
)


def test_the_wallets_table_names_the_cold_wallet_and_sweep_thresholds() -> None:
    wallets = parse_assets(SWEPT).wallets["ethereum"]
    assert wallets.cold == COLD
    limits = wallets.limits_of("ETH")
    assert (limits.max_balance, limits.min_collection_amount) == (Decimal("2.5"), Decimal("0.01"))
    assert wallets.limits_of("NOSUCH").max_balance is None  # not limited: all to the hot one


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ((f'cold = "{COLD}"', 'cold = "0x12"'), "wallets.ethereum.cold: not an Ethereum"),
        (('max_balance = "2.5"', "max_balance = 2.5"), "max_balance: amounts must be decimal"),
        (('"0.01"', '"0.0000000000000000001"'), "min_collection_amount: not a decimal"),
        (('max_balance = "2.5"', 'maximum = "2.5"'), "unknown setting 'maximum'"),
        (("[wallets.ethereum.ETH]", "[wallets.ethereum.BTC]"), "ethereum.BTC: not an asset of"),
        (("[wallets.ethereum]", "[wallets.bitcoin]"), "wallets.bitcoin: one of ethereum"),
    ],
)
def test_a_bad_wallets_table_is_refused(change: tuple[str, str], message: str) -> None:
    text = SWEPT.replace(*change)
    with pytest.raises(AssetConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_assets(text)
