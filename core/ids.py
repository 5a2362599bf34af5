"""The ids of ledger commands and payouts: built here, and checked here, only.

A ledger command's id is its dedupe key, so every producer of a command (intake, the
ledger's own credit legs) and the ledger's check of a command it reads build it the same
way from the same payload:
- `request:<request id>` for a deposit, withdrawal or transfer request;
- `deposit:<deposit id>` for a confirmed chain observation,
  `deposit:<deposit id>:removed:<block hash>` for a reorg removal
  (deposit ids: `core.observations.deposit_id`);
- `payout:<payout id>:confirmed|failed` for a payout's final result;
- `sweep:<sweep id>` for a sweep's final result, CONFIRMED or FAILED: one per sweep, so
  a second, different result of one sweep is a conflict, never a second fee (sweep ids:
  `sweep_id`);
- `transfer-credit:<sender>:<request id>` for the credit leg of an internal transfer (the
  sender is part of it: two accounts may use one request id);
- `breaker:<offset>` for a breaker change (its offset on breaker-state);
- `assignment:<deposit id>` for an operator's assignment of a deposit held in suspense,
  `assignment-credit:<deposit id>` for its credit leg (a deposit is assigned once).
A payout is `po:<account>:<request id>`. Reconciliation checks are
`tier1:<bank account>:<message id>`, `tier2:<bank account>:<as of, ms>` and
`tier3:<bank account>:<date>:<message id>`; a snapshot is `<bank account>:<date>`. Ids
are built here and, but for one, never parsed back: whoever needs a part keeps it. The
one: a ledger transaction carries only its cause's id, and reconciliation matches a bank
statement's entry to it by the reference inside (`statement_reference`).
"""

from __future__ import annotations

REQUEST_PREFIX = "request:"
DEPOSIT_PREFIX = "deposit:"
PAYOUT_RESULT_PREFIX = "payout:"
TRANSFER_CREDIT_PREFIX = "transfer-credit:"
BREAKER_PREFIX = "breaker:"
ASSIGNMENT_PREFIX = "assignment:"
ASSIGNMENT_CREDIT_PREFIX = "assignment-credit:"
SWEEP_PREFIX = "sweep:"


def request_command(request_id: str) -> str:
    return f"{REQUEST_PREFIX}{request_id}"


def deposit_command(deposit_id: str, status: str, block_hash: str) -> str:
    """The command of a CONFIRMED or REMOVED observation (a SEEN one is not a command)."""
    if status == "CONFIRMED":
        return f"{DEPOSIT_PREFIX}{deposit_id}"
    return f"{DEPOSIT_PREFIX}{deposit_id}:removed:{block_hash}"


def payout_result_command(payout_id: str, status: str) -> str:
    return f"{PAYOUT_RESULT_PREFIX}{payout_id}:{status.lower()}"


def sweep_id(chain: str, address: str, nonce: int, tx_hash: str) -> str:
    """A sweep: one signed transaction of the deposit address, of that nonce (one nonce is
    mined once, so of two sweeps of one nonce, after the first FAILED, one can move value)."""
    return f"{chain}:{address.lower()}:{nonce}:{tx_hash.lower()[2:18]}"


def sweep_result_command(sweep: str) -> str:
    return f"{SWEEP_PREFIX}{sweep}"


def transfer_credit(sender: str, request_id: str) -> str:
    return f"{TRANSFER_CREDIT_PREFIX}{sender}:{request_id}"


def assignment(deposit_id: str) -> str:
    return f"{ASSIGNMENT_PREFIX}{deposit_id}"


def assignment_credit(deposit_id: str) -> str:
    return f"{ASSIGNMENT_CREDIT_PREFIX}{deposit_id}"


def breaker_command(offset: int) -> str:
    return f"{BREAKER_PREFIX}{offset}"


def payout(account_id: str, request_id: str) -> str:
    return f"po:{account_id}:{request_id}"


def tier1_check(bank_account: str, message_id: str) -> str:
    """The reconciliation check of a camt.054 notification."""
    return f"tier1:{bank_account}:{message_id}"


def tier2_check(bank_account: str, as_of_ms: int) -> str:
    """The reconciliation check of an intraday balance."""
    return f"tier2:{bank_account}:{as_of_ms}"


def tier3_check(bank_account: str, day: str, message_id: str) -> str:
    """The reconciliation check of a camt.053 statement of `day`."""
    return f"tier3:{bank_account}:{day}:{message_id}"


def snapshot(bank_account: str, day: str) -> str:
    """The end-of-day snapshot of a bank account and date."""
    return f"{bank_account}:{day}"


def statement_reference(cause_id: str) -> str:
    """The reference a bank statement carries for the ledger transaction `cause_id` caused.

    A bank deposit is `deposit:bank:<bank account>:<entry reference>:0` (the reference may
    hold ':'); another deposit `deposit:<chain>:<tx hash>:<index>` (its hash); a payout's
    final result `payout:<payout id>:<status>` (a bank payout's end-to-end id is its payout
    id). Any other cause is its own reference.
    """
    if cause_id.startswith(f"{DEPOSIT_PREFIX}bank:") and cause_id.count(":") >= 4:
        return cause_id.split(":", 3)[3].rsplit(":", 1)[0]
    if cause_id.startswith(PAYOUT_RESULT_PREFIX) and cause_id.count(":") >= 2:
        return cause_id[len(PAYOUT_RESULT_PREFIX) :].rsplit(":", 1)[0]
    parts = cause_id.split(":")
    if cause_id.startswith(DEPOSIT_PREFIX) and len(parts) >= 3:
        return parts[2]
    return cause_id
