"""The bank drop directory: camt files (or JSON notifications) put there are published.

Owns the file lifecycle: a file is claimed by an atomic rename into `.claimed/` (so two
workers sweeping one directory never both take it), submitted through the bank
connector, then moved to `processed/` or, when it cannot be read, to `rejected/` with a
`.error.txt` beside it naming the reason (the bytes also go to the dead-letter topic).
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

from connectors.bank import BankConnector, Submission
from connectors.camt import CamtError

log = logging.getLogger(__name__)

SUFFIXES = (".xml", ".json")


def sweep(directory: Path, connector: BankConnector) -> list[tuple[str, str]]:
    """Publish every waiting file; returns (file name, outcome) pairs."""
    outcomes = []
    for folder in (".claimed", "processed", "rejected"):
        (directory / folder).mkdir(parents=True, exist_ok=True)
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.suffix.lower() not in SUFFIXES:
            continue
        claimed = directory / ".claimed" / path.name
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue  # another worker took it
        try:
            submission = submit_file(claimed, connector)
        except CamtError as error:
            # the reason first (written whole, then moved in), then the file it explains:
            # whoever sees a file in rejected/ finds its reason beside it
            reason = directory / ".claimed" / f"{path.name}.error.txt"
            reason.write_text(f"{error.reason}: {error}\n")
            reason.rename(directory / "rejected" / reason.name)
            claimed.rename(directory / "rejected" / path.name)
            log.warning("bank inbox: %s rejected: %s", path.name, error)
            outcomes.append((path.name, f"rejected: {error.reason}"))
            continue
        claimed.rename(directory / "processed" / path.name)
        outcomes.append(
            (
                path.name,
                f"published {len(submission.published)}, duplicates {len(submission.duplicates)}",
            )
        )
    return outcomes


def submit_file(path: Path, connector: BankConnector) -> Submission:
    data = path.read_bytes()
    source = f"bank-inbox:{path.name}"
    if path.suffix.lower() == ".json":
        try:
            body = json.loads(data, parse_float=Decimal)
        except json.JSONDecodeError as error:
            problem = CamtError("invalid_json", f"{path.name}: {error}")
            connector.reject(data, source, problem)
            raise problem from None
        return connector.submit_json(body, source)
    return connector.submit_xml(data, source)
