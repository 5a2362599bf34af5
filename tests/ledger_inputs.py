"""Builders of ledger inputs (request events, observations, payout results) for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from core.assets import load_assets
from core.observations import deposit_id

ASSETS_FILE = Path(__file__).parent / "fixtures" / "assets.toml"
ASSETS = load_assets(ASSETS_FILE)
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ETH_ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"
IBAN = "GB33BUKB20201555555555"


def observation(
    account: str,
    amount: str,
    tx: str,
    asset: str = "WEI",
    index: int = 0,
    status: str = "CONFIRMED",
    block_hash: str = "0xb1",
) -> dict:
    chain = ASSETS[asset].chain
    return {
        "observation_id": f"{chain}:{tx}:{index}:{block_hash}",
        "deposit_id": deposit_id(ASSETS[asset], tx, index),
        "chain": chain,
        "asset": asset,
        "tx_hash": tx,
        "output_index": index,
        "block_number": 10,
        "block_hash": block_hash,
        "from_address": "0xsender",
        "to_address": ETH_ADDRESS,
        "account_id": account,
        "amount": Decimal(amount),
        "confirmations": 3,
        "confirmations_required": 2,
        "status": status,
        "observed_at": T0,
    }


def withdrawal(
    account: str, request_id: str, amount: str, asset: str = "WEI", destination: str = ETH_ADDRESS
) -> dict:
    return {
        "request_id": request_id,
        "account_id": account,
        "asset": asset,
        "amount": Decimal(amount),
        "destination_address": destination,
        "created_at": T0,
    }


def deposit_request(
    account: str, request_id: str, amount: str, tx: str, asset: str = "WEI"
) -> dict:
    return {
        "request_id": request_id,
        "account_id": account,
        "asset": asset,
        "amount": Decimal(amount),
        "chain": ASSETS[asset].chain,
        "tx_hash": tx,
        "output_index": 0,
        "created_at": T0,
    }


def internal_transfer(
    account: str, request_id: str, amount: str, to: str, asset: str = "WEI"
) -> dict:
    return {
        "request_id": request_id,
        "account_id": account,
        "kind": "INTERNAL",
        "asset": asset,
        "amount": Decimal(amount),
        "to_account_id": to,
        "destination_asset": None,
        "destination_address": None,
        "deposit_tx_hash": None,
        "deposit_output_index": None,
        "created_at": T0,
    }


def cross_chain(account: str, request_id: str, amount: str, tx: str) -> dict:
    return {
        "request_id": request_id,
        "account_id": account,
        "kind": "CROSS_CHAIN",
        "asset": "xUSD",
        "amount": Decimal(amount),
        "to_account_id": None,
        "destination_asset": "USDT",
        "destination_address": ETH_ADDRESS,
        "deposit_tx_hash": tx,
        "deposit_output_index": 0,
        "created_at": T0,
    }


def payout_result(
    account: str,
    payout_id: str,
    status: str,
    network_fee: str | None = None,
    reason: str | None = None,
) -> dict:
    return {
        "payout_id": payout_id,
        "account_id": account,
        "status": status,
        "tx_hash": "0xpaid" if status == "CONFIRMED" else None,
        "network_fee": None if network_fee is None else Decimal(network_fee),
        "reason": reason,
        "reported_at": T0,
    }


def breaker(state: str, scope: str = "global") -> dict:
    level = {"CLOSED": "OK", "SUSPENDED": "SIGNIFICANT", "OPEN": "CRITICAL"}[state]
    return {
        "scope": scope,
        "state": state,
        "level": level,
        "reason": "test",
        "actor": "test",
        "changed_at": T0,
    }
