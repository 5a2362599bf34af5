"""The regulator's daily safeguarding report: one per bank account and statement date.

Written beside the data (`DATA_DIR/reports/safeguarding/<account>/<date>.json|csv`); the
date is read as a date and the account must be one configured path component
(`core.assets.BANK_ACCOUNT`), so no input picks the path.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from core.assets import BANK_ACCOUNT, Asset
from core.fields import iso_date
from streams.reconciliation.core import Check
from topics.jsonable import jsonable


def report_base(data_dir: Path, account_id: str, statement_date: str) -> Path:
    """`reports/safeguarding/<account>/<date>` under the data directory; the date is read
    as a date and the account must be one path component, so no input picks the path."""
    day = iso_date(statement_date, "statement_date").isoformat()
    if not BANK_ACCOUNT.fullmatch(account_id):
        raise ValueError(f"account id {account_id!r} cannot name a report directory")
    reports = (data_dir / "reports" / "safeguarding").resolve()
    directory = reports / account_id
    directory.mkdir(parents=True, exist_ok=True)
    return directory / day


def write_safeguarding_report(
    data_dir: Path, asset: Asset, statement, check: Check, matching, now
) -> Path:
    """The regulator's daily safeguarding report for one account, as CSV and JSON."""
    base = report_base(data_dir, check.account_id, statement["statement_date"])
    summary = {
        "account_id": check.account_id,
        "asset": asset.code,
        "currency": statement["currency"],
        "date": statement["statement_date"],
        "statement_message_id": statement["message_id"],
        "bank_opening_balance": statement["opening_balance"],
        "bank_closing_balance": statement["closing_balance"],
        "client_funds_ledger": check.ledger_balance,
        "difference": check.difference,
        "deviation_pct": check.result(now)["deviation_pct"],
        "level": check.level,
        "entries_matched": matching.matched,
        "findings": [
            {
                "type": f.type,
                "reference": f.reference,
                "bank": f.expected,
                "ledger": f.actual,
                "found_in": f.source_system,
            }
            for f in matching.findings
        ],
        "generated_at": now,
    }
    base.with_suffix(".json").write_text(json.dumps(jsonable(summary), indent=2))
    with base.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["field", "value"])
        for name, value in jsonable(summary).items():
            if name != "findings":
                writer.writerow([name, value])
        writer.writerow([])
        writer.writerow(["finding", "reference", "bank", "ledger", "found_in"])
        for finding in summary["findings"]:
            writer.writerow(jsonable(list(finding.values())))
    return base.with_suffix(".json")
