"""Model-based: random streams with duplicates give exactly the reference model's balances."""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streams.ledger import marks
from streams.ledger.invariants import check_invariants
from tests.ledger_inputs import internal_transfer, observation, payout_result, withdrawal
from tests.streams.pure_ledger import PureLedger
from tests.streams.reference_model import ReferenceModel

ACCOUNTS = ["a", "b", "c"]
account = st.sampled_from(ACCOUNTS)
amount = st.integers(1, 12)
operation = st.one_of(
    st.tuples(st.just("deposit"), account, st.integers(0, 15), amount),
    st.tuples(st.just("withdraw"), account, st.integers(0, 15), amount),
    st.tuples(st.just("result"), account, st.integers(0, 15), st.booleans(), st.integers(0, 2)),
    st.tuples(st.just("transfer"), account, st.integers(0, 15), amount, account),
)


def run(operations) -> tuple[PureLedger, ReferenceModel]:
    ledger, model = PureLedger(), ReferenceModel()
    deposit_amounts: dict[int, tuple[str, int]] = {}
    requests: dict[int, tuple] = {}
    transfers: dict[int, tuple] = {}
    for op in operations:
        if op[0] == "deposit":
            _, acct, tx, value = op
            acct, value = deposit_amounts.setdefault(tx, (acct, value))  # a tx has one payee
            ledger.submit("CHAIN_OBSERVATION", observation(acct, str(value), f"0x{tx:02x}"))
            model.deposit(acct, f"0x{tx:02x}", value)
        elif op[0] == "withdraw":
            _, acct, rid, value = op
            acct, value = requests.setdefault(rid, (acct, value))[:2]
            ledger.submit("WITHDRAWAL_REQUEST", withdrawal(acct, f"r{rid}", str(value)))
            model.withdraw(acct, f"r{rid}", value)
        elif op[0] == "result":
            _, acct, rid, confirmed, network_fee = op
            if rid not in requests:
                continue
            acct = requests[rid][0]
            payout_id = f"po:{acct}:r{rid}"
            status = "CONFIRMED" if confirmed else "FAILED"
            fee = str(network_fee) if confirmed else None
            ledger.submit("PAYOUT_RESULT", payout_result(acct, payout_id, status, fee))
            refused = ("conflicting_payout_result", "conflicting_duplicate")  # e.g. another fee
            if ledger.dead_letters and ledger.dead_letters[-1] in refused:
                ledger.dead_letters.pop()  # the ledger changed nothing; the model ignores it too
                continue
            model.payout_result(payout_id, confirmed, network_fee)
        else:
            _, acct, rid, value, to = op
            acct, value, to = transfers.setdefault(rid, (acct, value, to))
            if acct == to:
                continue
            ledger.submit("TRANSFER_REQUEST", internal_transfer(acct, f"t{rid}", str(value), to))
            model.transfer(acct, f"t{rid}", value, to)
    return ledger, model


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=60))
@example(  # a second CONFIRMED of one payout with another network fee: refused, not applied
    [
        ("deposit", "a", 0, 12),
        ("withdraw", "a", 0, 1),
        ("result", "a", 0, True, 0),
        ("result", "a", 0, True, 1),
    ]
)
def test_ledger_equals_reference_model(operations) -> None:
    check_against_model(operations)


TINY_PAGES = {  # pages of one or two items: marks and payouts move every few commands
    "CREDITED_MARKS_KEPT": 2,
    "MARKS_PER_PAGE": 1,
    "FINAL_ITEMS_KEPT": 3,
    "FINAL_ITEMS_PER_PAGE": 2,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=60))
def test_ledger_with_tiny_pages_equals_reference_model(operations) -> None:
    """The same, with repeats, results and conflicts finding what moved to pages."""
    with patch.multiple(marks, **TINY_PAGES):
        check_against_model(operations)


def test_tiny_pages_do_page() -> None:
    deposits = [("deposit", "a", tx, 5) for tx in range(6)]
    withdrawals = [("withdraw", "a", rid, 1) for rid in range(4)]
    results = [("result", "a", rid, rid % 2 == 0, 1) for rid in range(4)]
    with patch.multiple(marks, **TINY_PAGES):
        ledger = check_against_model(deposits + withdrawals + results + deposits + withdrawals)
    assert any(key.startswith("~marks:") for key in ledger.records)
    assert any(key.startswith("~final:") for key in ledger.records)


def check_against_model(operations) -> PureLedger:
    ledger, model = run(operations)
    for acct in ACCOUNTS:
        record = ledger.record(acct)
        assert record.balance("WEI") == model.balance[acct], acct
        assert record.reserved_of("WEI") == model.reserved[acct], acct
    assert -ledger.ledger_total("operator:WEI:assets") == -model.operator_assets
    assert -ledger.ledger_total("operator:WEI:fees") == model.fees
    assert ledger.ledger_total("clearing:WEI") == 0
    unexpected = [reason for reason in ledger.dead_letters if reason != "unknown_payout"]
    assert unexpected == []
    for record in ledger.records.values():
        check_invariants(record)
    return ledger
