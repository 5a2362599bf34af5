"""The bank connector: camt files and JSON notifications in, bank events out, once each.

Owns what happens to a bank message after it arrives (from the HTTP endpoint, the drop
directory or the CLI): parse it (`core.camt`), check every event against its bank
account (`core.bank_events`: a configured account, its currency, amounts at its
scale, real dates), publish each notification to bank-notifications and each statement
to bank-statements keyed by the bank account, and publish a fiat deposit (a CONFIRMED
chain observation on the `bank` chain) for every booked credit whose end-to-end id or
remittance text carries a user's bound deposit reference (address-bindings with chain
`bank`, folded by `core.bindings`: malformed or conflicting bindings are ignored).

A message is refused whole (`CamtError`, nothing published) when any of its events fails a
check, and dead-lettered with a bounded excerpt (`topics.dead_letters.excerpt`). The same
message delivered twice is published once: the connector keeps the (topic, bank account,
message id) triples already on the bank topics (a whole-topic view, so a restart
remembers them); one message id used by two bank accounts is two messages. Two
connectors receiving one message at the same instant may both publish it;
reconciliation and the ledger dedupe by entry reference and deposit id, so that changes
nothing.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaException, Producer

from core import observations
from core.assets import AssetCatalogue
from core.bank_events import check_bank_event
from core.bindings import Bindings
from core.camt import CamtError, notification_from_json, parse_camt
from core.fields import FieldError
from core.reasons import Reason
from topics import catalogue
from topics.codec import Codec
from topics.dead_letters import dead_letter, excerpt
from topics.kafka import flush
from topics.metrics import dead_letters
from topics.view import TopicView

log = logging.getLogger(__name__)

MayPost = Callable[[str], bool] | None  # whether the caller may post for a bank account


class ForbiddenAccount(CamtError):
    """The caller may not post for a bank account the message names (nothing is kept)."""


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
    """What the connector knows from the topics: published messages, deposit references."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.published: set[tuple[str, str, str]] = set()  # (topic, bank account, message id)
        self.references = Bindings(BANK_CHAIN, str.upper)  # deposit reference -> user account

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.ADDRESS_BINDINGS:
            self.references.fold(value)
        else:
            self.published.add((topic, value["account_id"], value["message_id"]))

    def account_for(self, entry: dict[str, Any]) -> str | None:
        candidates = [entry.get("end_to_end_id") or ""]
        candidates += REFERENCE_TOKEN.findall(entry.get("remittance_info") or "")
        for candidate in candidates:
            account = self.references.account_for(candidate)
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
            producer.auth,
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

    def submit_xml(self, data: bytes, source: str, may_post: MayPost = None) -> Submission:
        """Publish a camt.053/054 file; raises CamtError (after dead-lettering it), or
        `ForbiddenAccount` (nothing recorded) when `may_post` refuses one of its accounts."""
        try:
            message = parse_camt(data)
            topic = (
                catalogue.BANK_STATEMENTS
                if message.kind == "camt.053"
                else catalogue.BANK_NOTIFICATIONS
            )
            submission = Submission(message.kind, findings=message.findings)
            self._publish(submission, topic, message.events, may_post)
        except ForbiddenAccount:
            raise
        except CamtError as error:
            self.reject(data, source, error)
            raise
        return submission

    def submit_json(
        self, body: object, source: str, data: bytes = b"", may_post: MayPost = None
    ) -> Submission:
        """Publish one notified entry of the JSON shape; raises CamtError when it is not one
        (or `ForbiddenAccount`, as `submit_xml`)."""
        try:
            notification = notification_from_json(body)
            submission = Submission("json")
            self._publish(submission, catalogue.BANK_NOTIFICATIONS, [notification], may_post)
        except ForbiddenAccount:
            raise
        except CamtError as error:
            self.reject(data, source, error)
            raise
        return submission

    def _publish(
        self,
        submission: Submission,
        topic: str,
        events: list[dict[str, Any]],
        may_post: MayPost = None,
    ) -> None:
        for event in events:  # the caller's scope first: a refused caller learns nothing more
            if may_post is not None and not may_post(event["account_id"]):
                raise ForbiddenAccount(
                    Reason.FORBIDDEN,
                    f"this key does not post for bank account {event['account_id']}",
                )
        for event in events:
            try:
                check_bank_event(event, self.assets)
            except FieldError as error:
                raise CamtError(error.reason, f"{event['message_id']}: {error}") from None
        self.view.wait_caught_up()
        with self.submit_lock:
            planned = [self._planned(topic, event) for event in events]  # all encoded first
            try:
                for event, value, deposits in planned:
                    self._produce(submission, topic, event, value, deposits)
            except (KafkaException, BufferError) as error:
                raise CamtError(
                    Reason.NOT_PUBLISHED, f"the broker refused an event: {error}"
                ) from None
            flush(self.producer, "bank events")

    def _planned(self, topic: str, event: dict[str, Any]) -> tuple:
        """(event, its value, its deposits as (observation, its value)); value None: a
        message already published."""
        with self.view.lock:
            if (topic, event["account_id"], event["message_id"]) in self.state.published:
                return event, None, []
        deposits = self._deposits(event) if topic == catalogue.BANK_NOTIFICATIONS else []
        try:
            encoded = [
                (observation, self.codec.encode(catalogue.CHAIN_OBSERVATIONS, observation))
                for observation in deposits
            ]
            return event, self.codec.encode(topic, event), encoded
        except ValueError as error:  # e.g. a value the wire cannot carry
            raise CamtError(Reason.INVALID_FIELD, f"{event['message_id']}: {error}") from None

    def _produce(self, submission, topic, event, value, deposits) -> None:
        submission.events.append(event)
        if value is None:
            submission.duplicates.append(event["message_id"])
            return
        for observation, observed in deposits:
            self.producer.produce(
                self.prefix + catalogue.CHAIN_OBSERVATIONS,
                observed,
                observation["account_id"].encode(),
            )
            submission.deposits.append(observation["deposit_id"])
        self.producer.produce(self.prefix + topic, value, event["account_id"].encode())
        with self.view.lock:
            self.state.published.add((topic, event["account_id"], event["message_id"]))
        submission.published.append(event["message_id"])

    def _deposits(self, notification: dict[str, Any]) -> list[dict[str, Any]]:
        """The deposit observations of credits carrying a user's deposit reference (dust
        below the asset's minimum is not a deposit: it stays unattributed)."""
        asset = self.assets.by_bank_account(notification["account_id"])
        if asset is None:
            return []
        deposits = []
        now = datetime.now(UTC)
        for entry in notification["entries"]:
            if entry["credit_debit_indicator"] != "CRDT":
                continue
            if entry["amount"] <= 0 or entry["amount"] < asset.min_deposit:
                log.info("bank credit %s is below the minimum deposit", entry["entry_reference"])
                continue
            with self.view.lock:
                account_id = self.state.account_for(entry)
            if account_id is None:
                log.info("bank credit %s carries no deposit reference", entry["entry_reference"])
                continue
            entry["deposit_account_id"] = account_id  # reconciliation waits for the ledger
            reference = entry["entry_reference"]
            deposit_id = observations.deposit_id(asset, reference, 0)
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
            deposits.append(observation)
        return deposits

    def reject(self, data: bytes, source: str, error: CamtError) -> None:
        """A dead letter of a refused message: its reason and a bounded excerpt."""
        kept, described = excerpt(data)
        record = dead_letter(
            source_topic=source[:200],
            source_partition=-1,
            source_offset=-1,
            key=None,
            value=kept,
            reason=error.reason,
            error=f"{error} ({described})",
            component="bank-connector",
        )
        dead_letters.labels("bank-connector", error.reason).inc()
        self.producer.produce(
            self.prefix + catalogue.DEAD_LETTERS,
            self.codec.encode(catalogue.DEAD_LETTERS, record),
            source[:200].encode(),
        )
        flush(self.producer, "a bank dead letter")
