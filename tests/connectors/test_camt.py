"""camt.053/054 parsing: every shared sample, each supported version, and unreadable input."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.camt import CamtError, notification_from_json, parse_camt
from streams.reconciliation.core import signed

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "camt"  # ../shared/samples/camt


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_053_v02_sample_reads_despite_its_validation_findings() -> None:
    message = parse_camt(sample("viafintech_053_valid_example.xml"))
    assert (message.kind, message.version) == ("camt.053", "camt.053.001.02")
    assert message.message_id == "053D2013-12-27T22:05:03.0N130000005"
    assert any("NtryRef" in finding for finding in message.findings)
    [statement] = message.events
    assert statement["account_id"] == "DE14740618130000033626"
    assert statement["currency"] == "EUR"
    assert statement["statement_date"] == "2013-12-27"
    assert statement["opening_balance"] == Decimal("33.06")
    assert statement["closing_balance"] == Decimal("23.06")
    amounts = [signed(entry) for entry in statement["entries"]]
    assert amounts == [Decimal("-2.00"), Decimal("-3.00"), Decimal("1.00"), Decimal("-6.00")]
    assert statement["opening_balance"] + sum(amounts) == statement["closing_balance"]
    assert statement["entries"][0]["end_to_end_id"] == "EndToEndReference"
    assert statement["validation_findings"] == message.findings


def test_053_v04_sample_has_13_entries_that_add_up_to_its_closing_balance() -> None:
    message = parse_camt(sample("viafintech_053_valid_example_v4.xml"))
    assert message.version == "camt.053.001.04" and message.findings == []
    [statement] = message.events
    assert statement["account_id"] == "CH0309000000250090342"
    assert statement["currency"] == "CHF"
    assert len(statement["entries"]) == 13
    total = sum(signed(entry) for entry in statement["entries"])
    assert total == Decimal("537.61")
    assert statement["opening_balance"] == Decimal("322152.16")
    assert statement["closing_balance"] == Decimal("322689.77")
    references = [entry["entry_reference"] for entry in statement["entries"]]
    assert len(set(references)) == 13  # batch entries share NtryRef; references stay unique


def test_054_sample_has_4_chf_entries() -> None:
    message = parse_camt(sample("viafintech_054_valid_example.xml"))
    assert (message.kind, message.version) == ("camt.054", "camt.054.001.04")
    assert message.findings == []
    [notification] = message.events
    assert notification["message_id"] == "20160410375204000131033"
    assert notification["account_id"] == "CH0309000000250090342"
    entries = notification["entries"]
    assert [e["credit_debit_indicator"] for e in entries] == ["CRDT", "CRDT", "DBIT", "DBIT"]
    assert [e["amount"] for e in entries] == [
        Decimal("24.00"),
        Decimal("56.56"),
        Decimal("6.00"),
        Decimal("15.53"),
    ]
    assert all(e["currency"] == "CHF" for e in entries)
    assert entries[1]["end_to_end_id"] == "PMT-651727380907030005"
    assert entries[0]["booking_date"] == "2016-04-10"


def camt054(version: str, status: str = "<Sts>BOOK</Sts>", amount: str = "100.50") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.{version}">
  <BkToCstmrDbtCdtNtfctn>
    <GrpHdr><MsgId>MSG-{version}</MsgId><CreDtTm>2026-11-21T10:00:00</CreDtTm></GrpHdr>
    <Ntfctn>
      <Id>N-1</Id><CreDtTm>2026-11-21T10:00:00</CreDtTm>
      <Acct><Id><Othr><Id>ACC 42</Id></Othr></Id></Acct>
      <Ntry>
        <Amt Ccy="AED">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd>{status}
        <BookgDt><Dt>2026-11-21</Dt></BookgDt><AcctSvcrRef>REF-1</AcctSvcrRef>
        <NtryDtls><TxDtls><Refs><EndToEndId>E2E-1</EndToEndId></Refs>
          <RmtInf><Ustrd>deposit TKE-ALICE</Ustrd></RmtInf></TxDtls></NtryDtls>
      </Ntry>
    </Ntfctn>
  </BkToCstmrDbtCdtNtfctn>
</Document>""".encode()


@pytest.mark.parametrize("version", ["02", "03", "04", "05", "06", "07", "08"])
def test_every_supported_version_reads(version: str) -> None:
    status = "<Sts><Cd>BOOK</Cd></Sts>" if version == "08" else "<Sts>BOOK</Sts>"
    message = parse_camt(camt054(version, status))
    assert message.version == f"camt.054.001.{version}"
    [notification] = message.events
    [entry] = notification["entries"]
    assert notification["account_id"] == "ACC42"
    assert (entry["entry_reference"], entry["end_to_end_id"]) == ("REF-1", "E2E-1")
    assert entry["amount"] == Decimal("100.50")
    assert entry["remittance_info"] == "deposit TKE-ALICE"


def test_entries_not_booked_are_left_out_and_said_so() -> None:
    [notification] = parse_camt(camt054("04", "<Sts>PDNG</Sts>")).events
    assert notification["entries"] == []
    assert "1 entries not booked (left out)" in notification["validation_findings"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not xml at all", "not_xml"),
        (b"<Document xmlns='urn:example'/>", "unknown_message"),
        (camt054("01"), "unsupported_version"),
        (camt054("09"), "unsupported_version"),
        (camt054("04", amount="12,5"), "invalid_amount"),
        (
            camt054("04").replace(b"<Acct><Id><Othr><Id>ACC 42</Id></Othr></Id></Acct>", b""),
            "missing_field",
        ),
        (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "not_allowed"),
    ],
)
def test_unreadable_input_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(CamtError) as refused:
        parse_camt(data)
    assert refused.value.reason == reason


def test_json_notification_shape() -> None:
    body = {
        "message_id": "CAMT054-2025-001",
        "account_id": "AE070331234567890123456",
        "currency": "AED",
        "credit_debit_indicator": "CRDT",
        "amount": "100000.00",
        "bank_reference": "BNK-REF-12345",
        "end_to_end_id": "E2E-TXN-67890",
    }
    notification = notification_from_json(body)
    [entry] = notification["entries"]
    assert entry["amount"] == Decimal("100000.00")
    assert (entry["entry_reference"], entry["end_to_end_id"]) == ("BNK-REF-12345", "E2E-TXN-67890")
    with pytest.raises(CamtError, match="amount"):
        notification_from_json({**body, "amount": "1e"})
    with pytest.raises(CamtError, match="credit_debit_indicator"):
        notification_from_json({**body, "credit_debit_indicator": "IN"})


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.xml")), ids=lambda p: p.name)
def test_every_sample_file_parses_into_balanced_events(path: Path) -> None:
    message = parse_camt(path.read_bytes())
    assert message.events and all(event["entries"] for event in message.events)
    for event in message.events:
        if message.kind == "camt.053":
            total = sum(signed(entry) for entry in event["entries"])
            assert event["opening_balance"] + total == event["closing_balance"]
