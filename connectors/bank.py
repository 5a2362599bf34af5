"""The bank connector: camt files and JSON notifications in, bank events out, once each.

Owns what happens to a bank message after it arrives (from the HTTP endpoint, the drop
directory or the CLI): parse it (`connectors.camt`), publish each notification to
bank-notifications and each statement to bank-statements keyed by the bank account, and
publish a fiat deposit (a CONFIRMED chain observation on the `bank` chain) for every
booked credit whose end-to-end id or remittance text carries a user's bound deposit
reference (address-bindings with chain `bank`).

The same message delivered twice is published once: the connector keeps the message ids
already on the bank topics (a whole-topic view, so a restart remembers them). Two
connectors receiving one message at the same instant may both publish it; reconciliation
and the ledger dedupe by entry reference and deposit id, so that changes nothing.
A file that cannot be read goes to the dead-letter topic, whole, with the reason.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from connectors.camt import CamtError, notification_from_json, parse_camt
from tokengine.assets import AssetCatalogue
from topics import catalogue
from topics.codec import Codec
from topics.dead_letters import dead_letter
from topics.view import TopicView

log = logging.getLogger(__name__)

BANK_CHAIN = "bank"
REFERENCE_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-./]*")


@dataclass
class Submission:
    """What one delivered message became."""

    kind: str  # camt.053, camt.054 or json
    published: list[str] = field(default_factory=list)  # message ids published now
    duplicates: list[str] = field(default_factory=list)  # message ids already published
    deposits: list[str] = field(default_factory=list)  # deposit ids of fiat deposits
    findings: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "published": self.published,
            "duplicates": self.duplicates,
            "deposits": self.deposits,
            "validation_findings": self.findings,
        }


class BankState:
    """What the connector knows from the topics: published message ids, deposit references."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.published: set[tuple[str, str]] = set()  # (topic, message id)
        self.references: dict[str, str] = {}  # upper-case deposit reference -> user account

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.ADDRESS_BINDINGS:
            if value["chain"] == BANK_CHAIN:
                self.references[value["address"].upper()] = value["account_id"]
        else:
            self.published.add((topic, value["message_id"]))

    def account_for(self, entry: dict[str, Any]) -> str | None:
        candidates = [entry.get("end_to_end_id") or ""]
        candidates += REFERENCE_TOKEN.findall(entry.get("remittance_info") or "")
        for candidate in candidates:
            account = self.references.get(candidate.upper())
            if account is not None:
                return account
        return None


class BankConnector:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        codec: Codec,
        producer: Producer,
        assets: AssetCatalogue,
    ) -> None:
        self.prefix = prefix
        self.codec = codec
        self.producer = producer
        self.assets = assets
        self.state = BankState()
        self.view = TopicView(
            bootstrap,
            prefix,
            codec,
            [catalogue.BANK_NOTIFICATIONS, catalogue.BANK_STATEMENTS, catalogue.ADDRESS_BINDINGS],
            self.state.fold,
            name="bank-connector",
        )
        self.submit_lock = threading.Lock()

    def start(self) -> BankConnector:
        self.view.start()
        return self

    def stop(self) -> None:
        self.view.stop()

    def submit_xml(self, data: bytes, source: str) -> Submission:
        """Publish a camt.053/054 file; raises CamtError (after dead-lettering it)."""
        try:
            message = parse_camt(data)
        except CamtError as error:
            self.reject(data, source, error)
            raise
        submission = Submission(message.kind, findings=message.findings)
        topic = (
            catalogue.BANK_STATEMENTS
            if message.kind == "camt.053"
            else catalogue.BANK_NOTIFICATIONS
        )
        self._publish(submission, topic, message.events)
        return submission

    def submit_json(self, body: dict[str, Any], source: str) -> Submission:
        """Publish one notified entry of the JSON shape; raises CamtError when incomplete."""
        try:
            notification = notification_from_json(body)
        except CamtError as error:
            self.reject(repr(body).encode(), source, error)
            raise
        submission = Submission("json")
        self._publish(submission, catalogue.BANK_NOTIFICATIONS, [notification])
        return submission

    def _publish(self, submission: Submission, topic: str, events: list[dict[str, Any]]) -> None:
        self.view.wait_caught_up()
        with self.submit_lock:
            for event in events:
                key = (topic, event["message_id"])
                submission.events.append(event)
                with self.view.lock:
                    already = key in self.state.published
                if already:
                    submission.duplicates.append(event["message_id"])
                    continue
                if topic == catalogue.BANK_NOTIFICATIONS:
                    submission.deposits += self._publish_deposits(event)
                self.producer.produce(
                    self.prefix + topic,
                    self.codec.encode(topic, event),
                    event["account_id"].encode(),
                )
                with self.view.lock:
                    self.state.published.add(key)
                submission.published.append(event["message_id"])
            if self.producer.flush(30) != 0:
                raise RuntimeError("bank events not acknowledged by the broker")

    def _publish_deposits(self, notification: dict[str, Any]) -> list[str]:
        """Credits to a bank account backing an asset, carrying a user's deposit reference."""
        asset = self.assets.by_bank_account(notification["account_id"])
        if asset is None:
            return []
        deposits = []
        now = datetime.now(UTC)
        for entry in notification["entries"]:
            if entry["credit_debit_indicator"] != "CRDT":
                continue
            with self.view.lock:
                account_id = self.state.account_for(entry)
            if account_id is None:
                log.info("bank credit %s carries no deposit reference", entry["entry_reference"])
                continue
            entry["deposit_account_id"] = account_id  # reconciliation waits for the ledger
            reference = entry["entry_reference"]
            deposit_id = f"{BANK_CHAIN}:{reference.lower()}:0"
            observation = {
                "observation_id": f"{deposit_id}:booked",
                "deposit_id": deposit_id,
                "chain": BANK_CHAIN,
                "asset": asset.code,
                "tx_hash": reference,
                "output_index": 0,
                "block_number": 0,
                "block_hash": notification["message_id"],
                "from_address": "",
                "to_address": notification["account_id"],
                "account_id": account_id,
                "amount": entry["amount"],
                "confirmations": 0,
                "confirmations_required": 0,
                "status": "CONFIRMED",
                "observed_at": now,
            }
            self.producer.produce(
                self.prefix + catalogue.CHAIN_OBSERVATIONS,
                self.codec.encode(catalogue.CHAIN_OBSERVATIONS, observation),
                account_id.encode(),
            )
            deposits.append(deposit_id)
        return deposits

    def reject(self, data: bytes, source: str, error: CamtError) -> None:
        record = dead_letter(
            source_topic=source,
            source_partition=-1,
            source_offset=-1,
            key=None,
            value=data,
            reason=error.reason,
            error=str(error),
            component="bank-connector",
        )
        self.producer.produce(
            self.prefix + catalogue.DEAD_LETTERS,
            self.codec.encode(catalogue.DEAD_LETTERS, record),
            source.encode(),
        )
        self.producer.flush(30)
