"""Ledger commands: what one ledger-commands record is, and whether it may be applied.

Owns the `Command` (an envelope and its decoded payload, with its place in the log),
decoding it, checking it (addressed to a user account of its partition, or a breaker
change to the partition's control record; its id, account and payload agreeing as
`core.ids` builds them), and its fingerprint: what makes two commands with one id the
same (the payload without volatile fields). A command that fails a check is refused
(`Rejected`) before any handler reads it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from core import fields, ids
from core.fields import FieldError
from core.reasons import Reason
from streams.ledger.errors import Rejected
from streams.ledger.records import CONTROL_PREFIX, Mark, control_key, record_partition
from topics import catalogue
from topics.codec import Codec

REQUEST_KINDS = frozenset({"DEPOSIT_REQUEST", "WITHDRAWAL_REQUEST", "TRANSFER_REQUEST"})


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Command(NamedTuple):  # immutable like a frozen dataclass, built 6x faster
    command_id: str
    kind: str
    account_id: str
    payload: dict[str, Any]
    payload_bytes: bytes
    offset: int  # position in ledger-commands: the single order of this account's inputs
    time_ms: int  # ledger-commands timestamp: the event time of every decision
    source_offset: int = -1  # offset on the topic the command came from
    partition: int = -1  # the ledger-commands partition it was read from (-1: not checked)


def decode_command(
    codec: Codec, value: bytes | None, offset: int, time_ms: int, partition: int = -1
) -> Command:
    """The command in a ledger-commands record (envelope, then its payload); raises
    `DecodeError` for a record that is not one."""
    envelope = codec.decode(catalogue.LEDGER_COMMANDS, value)
    payload_topic = catalogue.COMMAND_PAYLOAD_TOPICS[envelope["kind"]]
    return Command(
        command_id=envelope["command_id"],
        kind=envelope["kind"],
        account_id=envelope["account_id"],
        payload=codec.decode(payload_topic, envelope["payload"]),
        payload_bytes=envelope["payload"],
        offset=offset,
        time_ms=time_ms,
        source_offset=envelope["source_offset"],
        partition=partition,
    )


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def created_ms(command: Command) -> int:
    """A request command's `created_at`, in epoch ms."""
    return int(command.payload["created_at"].timestamp() * 1000)


def check_addressee(command: Command) -> None:
    """A command names a user account of the partition it was read from (a breaker change:
    that partition's control record); anything else could write where it must not."""
    if command.kind == "BREAKER_CHANGE":
        known = command.partition < 0 or command.account_id == control_key(command.partition)
        if not (command.account_id.startswith(CONTROL_PREFIX) and known):
            message = f"account_id: {command.account_id!r} is not this partition's control key"
            raise Rejected(Reason.INVALID_FIELD, message)
        return
    try:
        fields.holder_account_id(command.account_id)
    except FieldError as error:
        raise Rejected(error.reason, str(error)) from None
    if command.partition >= 0 and record_partition(command.account_id) != command.partition:
        message = f"account_id: {command.account_id!r} is not of partition {command.partition}"
        raise Rejected(Reason.WRONG_PARTITION, message)


def expected_command(command: Command) -> tuple[str | None, str | None]:
    """(the command id, the account) that its kind and payload call for (as intake and the
    ledger build them: `core.ids`); None where any will do."""
    payload, kind = command.payload, command.kind
    if kind in REQUEST_KINDS:
        return ids.request_command(payload["request_id"]), payload["account_id"]
    if kind == "TRANSFER_CREDIT":
        credit = ids.transfer_credit(payload["account_id"], payload["request_id"])
        return credit, payload["to_account_id"]
    if kind == "CHAIN_OBSERVATION":
        if payload["status"] not in ("CONFIRMED", "REMOVED"):
            raise Rejected(
                Reason.INVALID_FIELD, f"status: {payload['status']} is not a ledger command"
            )
        observed = ids.deposit_command(
            payload["deposit_id"], payload["status"], payload["block_hash"]
        )
        return observed, payload["account_id"]
    if kind == "DEPOSIT_ASSIGNMENT":
        return ids.assignment(payload["deposit_id"]), fields.SUSPENSE_ACCOUNT
    if kind == "ASSIGNMENT_CREDIT":
        return ids.assignment_credit(payload["deposit_id"]), payload["account_id"]
    if kind == "PAYOUT_RESULT":
        if payload["status"] not in ("CONFIRMED", "FAILED"):
            raise Rejected(
                Reason.INVALID_FIELD, f"status: {payload['status']} is not a ledger command"
            )
        result = ids.payout_result_command(payload["payout_id"], payload["status"])
        return result, payload["account_id"]
    if kind == "SWEEP_RESULT":
        if payload["status"] not in ("CONFIRMED", "FAILED"):
            raise Rejected(
                Reason.INVALID_FIELD, f"status: {payload['status']} is not a ledger command"
            )
        return ids.sweep_result_command(payload["sweep_id"]), fields.TREASURY_ACCOUNT
    return None, None  # a breaker change: its id is its offset, its record the control record


def check_command(command: Command) -> None:
    """A command's id, account and payload agree, and the payload has what its kind needs:
    a forged or mangled command is refused before any handler reads it."""
    command_id, account = expected_command(command)
    if command_id is not None and command.command_id != command_id:
        raise Rejected(
            Reason.INVALID_FIELD, f"command_id: {command.command_id!r}, not {command_id!r}"
        )
    if account is not None and command.account_id != account:
        raise Rejected(Reason.INVALID_FIELD, "account_id: the command's and its payload's differ")
    payload = command.payload
    if command.kind == "TRANSFER_CREDIT" and payload["kind"] != "INTERNAL":
        raise Rejected(Reason.INVALID_FIELD, "kind: a credit leg is of an INTERNAL transfer")
    if command.kind in ("TRANSFER_REQUEST", "TRANSFER_CREDIT"):
        needed = (
            ("to_account_id",)
            if payload["kind"] == "INTERNAL"
            else ("destination_asset", "destination_address", "deposit_tx_hash")
        )
        missing = [name for name in needed if not isinstance(payload.get(name), str)]
        if payload["kind"] == "CROSS_CHAIN" and not isinstance(
            payload.get("deposit_output_index"), int
        ):
            missing.append("deposit_output_index")
        if missing:
            raise Rejected(
                Reason.MISSING_FIELD, f"{missing[0]}: required for a {payload['kind']} transfer"
            )


FINGERPRINT_V2 = "v2:"


def command_fingerprint(command: Command) -> str:
    """What makes two commands with one id 'the same': the payload minus volatile fields
    (compact JSON with sorted keys, by orjson; tagged with its version)."""
    text = orjson.dumps(stable_payload(command), default=str, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(command.kind.encode() + b"\n" + text).hexdigest()[:32]
    return FINGERPRINT_V2 + digest


def same_command(mark: Mark, command: Command) -> bool:
    """Whether `command` is the one `mark` was written for."""
    return mark.fingerprint == command_fingerprint(command)


def stable_payload(command: Command) -> dict[str, Any]:
    volatile = VOLATILE_FIELDS.get(command.kind, ())
    added = ADDED_FIELDS.get(command.kind, ())
    return {
        k: v
        for k, v in command.payload.items()
        if k not in volatile and not (k in added and v is None)
    }


# Fields a payload's schema gained after marks were first written: left out of the
# fingerprint while they hold their default (null), so a command written before the field
# existed, redelivered after an upgrade, is still the same command as its mark's.
ADDED_FIELDS = {"PAYOUT_RESULT": ("network_fee_asset",)}


VOLATILE_FIELDS = {
    "DEPOSIT_REQUEST": ("created_at",),
    "WITHDRAWAL_REQUEST": ("created_at",),
    "TRANSFER_REQUEST": ("created_at",),
    "TRANSFER_CREDIT": ("created_at",),
    # re-observations differ in confirmations, block and time, not in what was paid
    "CHAIN_OBSERVATION": (
        "observation_id",
        "confirmations",
        "confirmations_required",
        "block_number",
        "block_hash",
        "observed_at",
        "status",
        "from_address",
    ),
    "PAYOUT_RESULT": ("reported_at",),
    "BREAKER_CHANGE": (),
    "DEPOSIT_ASSIGNMENT": ("assigned_at",),
    "ASSIGNMENT_CREDIT": ("assigned_at",),
    "SWEEP_RESULT": ("reported_at",),
}
