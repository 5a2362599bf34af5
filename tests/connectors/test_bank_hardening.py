"""The bank connector and its drop directory against the real broker: content checked
against its bank account before anything is published, duplicates told apart by bank
account, bindings that cannot capture or move deposits, and files that cannot leak,
stall or stop the sweep."""

from __future__ import annotations

import os
import time
from decimal import Decimal

import pytest

from connectors.bank import BankConnector
from connectors.bank_inbox import STALE_CLAIM_S, sweep
from core.camt import CamtError
from tests.helpers import producer_for, read_topic, values
from tests.streams.test_reconciliation_worker import bind
from tokengine.demo.scenario import camt053
from topics import catalogue
from topics.codec import SingleObjectCodec

USD_ACCOUNT = "GB33BUKB20201555555555"
OTHER_ACCOUNT = "AE070331234567890123456"  # a second bank account, backing xAED
ASSETS_WITH_AED = f"""
[assets.xAED]
unit = "AED"
chain = "bank"
bank_account = "{OTHER_ACCOUNT}"
currency = "AED"
decimals = 2
min_deposit = "1.00"
"""


@pytest.fixture
def connector(settings):
    path = settings.data_dir / "assets.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings.assets_file.read_text() + ASSETS_WITH_AED)
    from core.assets import load_assets

    assets = load_assets(path)
    bank = BankConnector(
        settings.kafka,
        settings.topic_prefix,
        SingleObjectCodec(),
        producer_for(settings, catalogue.BANK_NOTIFICATIONS),  # signs as the worker does
        assets,
    ).start()
    yield bank
    bank.stop()


def entry(message_id: str, account: str = USD_ACCOUNT, **changes) -> dict:
    body = {
        "message_id": message_id,
        "account_id": account,
        "currency": "USD" if account == USD_ACCOUNT else "AED",
        "credit_debit_indicator": "CRDT",
        "amount": "10.00",
        "bank_reference": f"REF-{message_id}",
    }
    return {**body, **changes}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"currency": "JPY"}, "currency_mismatch"),
        ({"amount": "10.001"}, "invalid_amount"),
        ({"account_id": "GB94BARC10201530093459", "currency": "USD"}, "unknown_bank_account"),
        ({"booking_date": {"x": 1}}, "invalid_date"),
    ],
)
def test_content_that_does_not_suit_its_bank_account_is_refused_unpublished(
    settings, connector, changes, reason
) -> None:
    with pytest.raises(CamtError) as refused:
        connector.submit_json(entry("N-1", **changes), "test")
    assert refused.value.reason == reason
    assert read_topic(settings, catalogue.BANK_NOTIFICATIONS, timeout_s=2) == []
    [letter] = values(read_topic(settings, catalogue.DEAD_LETTERS, until_count=1))
    assert letter["reason"] == reason


def test_one_message_id_on_two_bank_accounts_is_two_messages(settings, connector) -> None:
    # the dedupe key was (topic, message id): the second account's notification was lost
    first = connector.submit_json(entry("SAME-ID"), "test")
    second = connector.submit_json(entry("SAME-ID", account=OTHER_ACCOUNT), "test")
    again = connector.submit_json(entry("SAME-ID"), "test")
    assert (first.published, second.published, again.duplicates) == (
        ["SAME-ID"],
        ["SAME-ID"],
        ["SAME-ID"],
    )
    published = values(read_topic(settings, catalogue.BANK_NOTIFICATIONS, until_count=2))
    assert sorted(n["account_id"] for n in published) == sorted([USD_ACCOUNT, OTHER_ACCOUNT])


def test_bindings_cannot_capture_every_credit_or_move_a_reference(settings, connector) -> None:
    bind(settings, "", "mallory")  # the empty reference matched every credit without e2e
    bind(settings, "TKE-ALICE", "alice")
    bind(settings, "TKE-ALICE", "mallory")  # a re-bind moved alice's reference
    connector.view.wait_caught_up()
    plain = connector.submit_json(entry("N-plain"), "test")
    alice = connector.submit_json(entry("N-alice", end_to_end_id="TKE-ALICE"), "test")
    assert plain.deposits == []
    assert alice.deposits == ["bank:gb33bukb20201555555555:ref-n-alice:0"]
    [deposit] = values(read_topic(settings, catalogue.CHAIN_OBSERVATIONS, until_count=1))
    assert deposit["account_id"] == "alice"
    assert connector.state.references.refused == 2


def test_a_dead_letter_keeps_a_bounded_excerpt_of_a_bad_file(settings, connector) -> None:
    big = b"<Document>" + b"x" * 100_000
    with pytest.raises(CamtError):
        connector.submit_xml(big, "test")
    with pytest.raises(CamtError):
        connector.submit_xml(b"-----BEGIN PRIVATE KEY-----\nMIIE...", "test")
    letters = values(read_topic(settings, catalogue.DEAD_LETTERS, until_count=2))
    assert [len(letter["value"]) for letter in letters] == [1024, 0]
    assert "sha256" in letters[1]["error"] and "PRIVATE" not in letters[1]["error"]


def drop(inbox, name: str, data: bytes, age_s: float = 5.0) -> None:
    path = inbox / name
    path.write_bytes(data)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


def test_the_drop_directory_reads_regular_files_only_and_never_stops(settings, connector, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"<secret>the payout key</secret>")
    (inbox / "link.xml").symlink_to(secret)  # its bytes went to the dead-letter topic
    drop(inbox, "broken.json", b"{not json")  # killed the worker (a timer raised)
    drop(inbox, "binary.json", b"\xff\xfe\x00")
    drop(inbox, "deep.json", b"[" * 100_000)
    drop(inbox, "fresh.xml", b"<still being written", age_s=0)  # left for the next sweep
    statement = camt053("EOD-1", USD_ACCOUNT, "2026-11-20", Decimal(0), Decimal(0), [])
    drop(
        inbox, "good.xml", statement.replace(b'Ccy="AED"', b'Ccy="USD"').replace(b">AED<", b">USD<")
    )
    os.mkfifo(inbox / "pipe.xml")  # reading it would block the sweep for ever
    old = time.time() - 5
    for name in ("link.xml", "pipe.xml"):
        os.utime(inbox / name, (old, old), follow_symlinks=False)
    outcomes = dict(sweep(inbox, connector))
    assert outcomes == {
        "binary.json": "rejected: invalid_json",
        "broken.json": "rejected: invalid_json",
        "deep.json": "rejected: invalid_json",
        "good.xml": "published 1, duplicates 0",
        "link.xml": "rejected: not_a_regular_file",
        "pipe.xml": "rejected: not_a_regular_file",
    }
    assert (inbox / "fresh.xml").exists()
    assert (inbox / "rejected" / "link.xml.error.txt").read_text().startswith("not_a_regular_file")
    assert secret.read_bytes() == b"<secret>the payout key</secret>"  # never moved or read
    letters = values(read_topic(settings, catalogue.DEAD_LETTERS, until_count=5))
    assert all(b"payout key" not in (letter["value"] or b"") for letter in letters)
    assert all("payout key" not in letter["error"] for letter in letters)


def test_a_file_a_dead_worker_left_claimed_is_taken_up_again(settings, connector, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / ".claimed").mkdir(parents=True)
    notification = entry("N-claimed")
    import json

    claimed = inbox / ".claimed" / "left.json"
    claimed.write_text(json.dumps(notification))
    assert sweep(inbox, connector) == []  # claimed just now: maybe by a live worker
    assert STALE_CLAIM_S >= 60
    # later: a claim older than the bound is a dead worker's (the bound made short here)
    outcomes = sweep(inbox, connector, settle_s=0, stale_claim_s=0)
    assert outcomes == [("left.json", "published 1, duplicates 0")]
    assert (inbox / "processed" / "left.json").exists()
