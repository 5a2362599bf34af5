"""The chart of accounts: the names of the ledger accounts every posting goes to.

Per asset: a user's balance `user:<account>:<asset>` (a credit balance: its net is minus
the balance), what the operator holds `operator:<asset>:assets`, the fees it earned
`operator:<asset>:fees`, the liquidity of 1:1 conversions `operator:<asset>:liquidity`,
deposits nobody is bound for `operator:<asset>:suspense`, what the operator funded its hot
wallets with `operator:<asset>:capital`, and `clearing:<asset>` for
internal transfers between the debit on one partition and the credit on another. Account
ids hold no ':' (`core.fields.account_id`), so no user's account can be another ledger
account.
"""

from __future__ import annotations


def user_account(account_id: str, asset: str) -> str:
    return f"user:{account_id}:{asset}"


def operator_assets(asset: str) -> str:
    return f"operator:{asset}:assets"


def operator_fees(asset: str) -> str:
    return f"operator:{asset}:fees"


def operator_liquidity(asset: str) -> str:
    return f"operator:{asset}:liquidity"


def operator_suspense(asset: str) -> str:
    """Deposits to a deposit address no binding attributes, until an operator assigns them
    (held by the engine's suspense record: `core.fields.SUSPENSE_ACCOUNT`)."""
    return f"operator:{asset}:suspense"


def operator_capital(asset: str) -> str:
    """What the operator put into its own wallets: every transfer to a hot wallet from
    outside the engine's wallets (held by the engine's treasury record:
    `core.fields.TREASURY_ACCOUNT`), so operator assets count all its wallets hold."""
    return f"operator:{asset}:capital"


def clearing(asset: str) -> str:
    return f"clearing:{asset}"


def ledger_asset(ledger_account: str) -> str:
    """The asset of a ledger account."""
    if ledger_account.startswith("user:"):
        return ledger_account.rsplit(":", 1)[1]
    return ledger_account.split(":")[1]
