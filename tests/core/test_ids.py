"""The id grammar: every command kind has its own prefix, and the one id parsed back (a
ledger transaction's cause, for statement matching) gives the reference that went in."""

from __future__ import annotations

from core import ids
from core.observations import deposit_id
from tests.ledger_inputs import ASSETS


def test_every_command_kind_has_its_own_prefix() -> None:
    built = {
        ids.request_command("r:1"),
        ids.deposit_command("ethereum:0xab:0", "CONFIRMED", "0xb1"),
        ids.deposit_command("ethereum:0xab:0", "REMOVED", "0xb1"),
        ids.payout_result_command(ids.payout("alice", "w1"), "CONFIRMED"),
        ids.transfer_credit("alice", "t1"),
        ids.breaker_command(7),
    }
    assert len(built) == 6
    prefixes = (
        ids.REQUEST_PREFIX,
        ids.DEPOSIT_PREFIX,
        ids.PAYOUT_RESULT_PREFIX,
        ids.TRANSFER_CREDIT_PREFIX,
        ids.BREAKER_PREFIX,
    )
    for made in built:
        assert sum(made.startswith(prefix) for prefix in prefixes) == 1, made


def test_a_statement_finds_the_reference_its_transaction_was_caused_by() -> None:
    bank = ASSETS["xUSD"]
    for reference in ("BNK-1", "ref:with:colons", "E2E 7"):
        cause = ids.deposit_command(deposit_id(bank, reference, 0), "CONFIRMED", "")
        assert ids.statement_reference(cause) == reference.lower()
    chain = ids.deposit_command(deposit_id(ASSETS["ETH"], "0xAB12", 0), "CONFIRMED", "")
    assert ids.statement_reference(chain) == "0xab12"
    payout = ids.payout("alice", "w:1")
    assert ids.statement_reference(ids.payout_result_command(payout, "CONFIRMED")) == payout
    assert ids.statement_reference("request:r1") == "request:r1"
