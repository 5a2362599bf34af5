"""A chain watcher's saved state: its position, the deposits under watch, and what it keeps
of the operator's wallets.

Owns the state file's content (last block read, recent block hashes to find a fork point,
the deposits under watch until final, the outputs paying operator wallets,
`connectors.wallet_outflows`, and the account each deposit was first attributed to) and
writing it atomically (a temporary file replaced), so a restart resumes without a gap.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from connectors.wallet_outflows import WalletOutputs


@dataclass
class Tracked:
    """A deposit under watch, until it is final (confirmed and past the reorg depth)."""

    deposit_id: str
    asset: str
    tx_hash: str
    output_index: int
    block_number: int
    block_hash: str
    from_address: str
    to_address: str
    account_id: str
    amount: str  # Decimal as text (the state file is JSON)
    confirmed: bool = False
    last_confirmations: int = -1


@dataclass
class WatcherState:
    last_block: int
    hashes: dict[str, str]  # block number (text) -> hash
    tracked: dict[str, Tracked]
    wallet_outputs: WalletOutputs = field(default_factory=dict)  # `connectors.wallet_outflows`
    # deposit id -> [account, block]: the account a deposit was first attributed to, kept
    # while a reorg may bring it back in a block of another time (another binding's)
    attributed: dict[str, list] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, start_block: int) -> WatcherState:
        if not path.exists():
            return cls(start_block - 1, {}, {})
        data = json.loads(path.read_text())
        tracked = {k: Tracked(**v) for k, v in data["tracked"].items()}
        return cls(data["last_block"], data["hashes"], tracked, data.get("wallet_outputs", {}),
                   data.get("attributed", {}))  # fmt: skip

    def save(self, path: Path) -> None:
        data = {
            "last_block": self.last_block,
            "hashes": self.hashes,
            "tracked": {k: asdict(v) for k, v in self.tracked.items()},
            "wallet_outputs": self.wallet_outputs,
            "attributed": self.attributed,
        }
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, path)
