"""The operator's wallets against the ledger, and their sweeps: one report (pure).

Owns the body of `GET /api/v1/wallets` and of `tokengine wallets`, so both say the same:
per chain and asset, the newest wallet-holdings result (`<chain>:wallets:<asset>`, tier
WALLET_ONCHAIN: the block it was read at, what all the operator's wallets hold there,
what the ledger implies, the difference and its level), each chain's cold wallet from the
configuration, and the sweeps by chain, asset, destination and status (how many, the
amount moved, the network fees), each sweep counted once at its newest state (a final
one is never replaced by a SUBMITTED).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from core.assets import AssetCatalogue

HOLDINGS_TIER = "WALLET_ONCHAIN"
ZERO = Decimal(0)


def fold_sweep(sweeps: dict[str, dict[str, Any]], result: dict[str, Any]) -> None:
    """Keep `result` as its sweep's newest state (final states stay)."""
    current = sweeps.get(result["sweep_id"])
    if current is None or current["status"] == "SUBMITTED":
        sweeps[result["sweep_id"]] = result


def holdings(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest holdings result per `<chain>:wallets:<asset>`, in results' order."""
    newest: dict[str, dict[str, Any]] = {}
    for result in results:
        if result["tier"] == HOLDINGS_TIER and result["check_id"].startswith("holdings:"):
            newest[result["account_id"]] = result
    rows = []
    for account, result in sorted(newest.items()):
        chain = account.split(":", 1)[0]
        rows.append(
            {
                "chain": chain,
                "asset": result["asset"],
                "block": int(result["check_id"].rsplit(":", 1)[1]),
                "chain_balance": result["bank_balance"],
                "ledger_balance": result["ledger_balance"],
                "difference": result["difference"],
                "level": result["level"],
                "checked_at": result["checked_at"],
            }
        )
    return rows


def sweep_totals(sweeps: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    totals: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for sweep in sweeps:
        key = (sweep["chain"], sweep["asset"], sweep["to_role"], sweep["status"])
        row = totals.setdefault(key, {"count": 0, "amount": ZERO, "network_fees": ZERO})
        row["count"] += 1
        row["amount"] += sweep["amount"]
        row["network_fees"] += sweep["network_fee"] or ZERO
    return [
        {"chain": c, "asset": a, "destination": d, "status": s, **row}
        for (c, a, d, s), row in sorted(totals.items())
    ]


def wallet_report(
    results: Iterable[dict[str, Any]], sweeps: Iterable[dict[str, Any]], assets: AssetCatalogue
) -> dict[str, Any]:
    return {
        "holdings": holdings(results),
        "cold_wallets": {c: w.cold for c, w in sorted(assets.wallets.items()) if w.cold},
        "sweeps": sweep_totals(sweeps),
    }
