"""What every payout executor shares: the command loop, the breaker, and the reports.

Owns consuming payout commands of one chain, skipping payouts already final, waiting while
the breaker is OPEN (globally or for the asset: nothing is submitted), and reporting on
payout-results. A report is acknowledged by the broker before the executor goes on, so
SUBMITTED (with what a restart needs to find or resend the same transaction) exists before
anything reaches a chain. How a payout is paid is the chain's (`pay`).

No command or result stops the executor: an undecodable command is logged and skipped; a
command it cannot pay as given (an asset not configured or not of its chain, an amount
that is not positive and exact, a destination its chain would not take) is reported
FAILED with the reason, so the ledger releases the reservation; a result a chain cannot
use (`accepts_result`) is ignored, never trusted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer

from core.addresses import address_problem
from core.assets import Asset, AssetCatalogue
from core.config import Settings
from core.money import AmountError, quantize_exact
from core.reasons import Reason
from topics import catalogue
from topics.authentication import produce_refused_alert, signing_producer
from topics.codec import Codec, DecodeError
from topics.dead_letters import dead_letter_of_message
from topics.kafka import flush, make_consumer
from topics.metrics import dead_letters
from topics.view import TopicView

log = logging.getLogger(__name__)

MAX_DETAIL = 500  # characters of what the node said, kept with a FAILED result


@dataclass(frozen=True)
class ExecutorWiring:
    """What every payout executor is connected to: the broker, its group, codec and assets."""

    bootstrap: str
    group_id: str
    prefix: str
    codec: Codec
    producer: Producer
    consumer: Consumer
    assets: AssetCatalogue

    @classmethod
    def from_settings(
        cls, settings: Settings, group_id: str, codec: Codec, assets: AssetCatalogue
    ) -> ExecutorWiring:
        if not settings.kafka:
            raise ValueError("payout executors need a broker (TOKENGINE_KAFKA)")
        return cls(
            settings.kafka,
            group_id,
            settings.topic_prefix,
            codec,
            signing_producer(settings, catalogue.CONNECTORS),
            make_consumer(settings.kafka, group_id),
            assets,
        )


@dataclass
class PayoutFacts:
    """What the executor reads from topics: each payout's newest result, breaker states."""

    results: dict[str, dict[str, Any]]
    breakers: dict[str, str]
    accepts: Callable[[dict[str, Any]], bool] = lambda _result: True

    def fold(self, topic: str, value: dict[str, Any]) -> None:
        if topic == catalogue.PAYOUT_RESULTS:
            if not self.accepts(value):
                log.warning("payout result of %s ignored: unusable", value["payout_id"])
                return
            current = self.results.get(value["payout_id"])
            if current is None or current["status"] == "SUBMITTED":
                self.results[value["payout_id"]] = value
        elif topic == catalogue.BREAKER_STATE:
            self.breakers[value["scope"]] = value["state"]


class PayoutExecutor:
    chain: str

    def __init__(self, wiring: ExecutorWiring) -> None:
        self.prefix = wiring.prefix
        self.codec = wiring.codec
        self.producer = wiring.producer
        self.auth = wiring.producer.auth  # the signing producer's: checks what is read too
        self.consumer = wiring.consumer
        self.assets = wiring.assets
        self.facts = PayoutFacts({}, {}, self.accepts_result)
        self.view = TopicView(
            wiring.bootstrap,
            wiring.prefix,
            wiring.codec,
            wiring.producer.auth,
            [catalogue.PAYOUT_RESULTS, catalogue.BREAKER_STATE],
            self.facts.fold,
            name=f"{wiring.group_id}-facts",
            partitions={catalogue.BREAKER_STATE: 1},
        )
        self.stopping = threading.Event()
        self.sent = 0  # transactions this process sent to the node
        self.holding: str | None = None  # the payout waiting for the breaker to close

    def run(self) -> None:
        self.view.start()
        self.consumer.subscribe([self.prefix + catalogue.PAYOUT_COMMANDS])
        try:
            while not self.stopping.is_set():
                message = self.consumer.poll(0.2)
                if message is None or message.error():
                    continue
                try:  # only what the ledger prepared is ever paid
                    self.auth.check_message(catalogue.PAYOUT_COMMANDS, message)
                    command = self.codec.decode(catalogue.PAYOUT_COMMANDS, message.value())
                except DecodeError as error:
                    log.warning("payout command refused: %s", error)
                    self.dead_letter(message, error)
                    self.consumer.commit(message, asynchronous=False)
                    continue
                if command["chain"] == self.chain and not self.execute(command):
                    return  # stopping mid-payout: the command stays uncommitted, seen again
                self.consumer.commit(message, asynchronous=False)
        finally:
            self.view.stop()
            self.consumer.close()

    def stop(self) -> None:
        self.stopping.set()

    def dead_letter(self, message: Any, error: DecodeError) -> None:
        letter = dead_letter_of_message(
            message, catalogue.PAYOUT_COMMANDS, error.reason, str(error), f"{self.chain}-payouts"
        )
        dead_letters.labels(f"{self.chain}-payouts", error.reason).inc()
        self.producer.produce(
            self.prefix + catalogue.DEAD_LETTERS,
            self.codec.encode(catalogue.DEAD_LETTERS, letter),
            catalogue.PAYOUT_COMMANDS.encode(),
        )
        if error.reason == Reason.UNAUTHENTICATED:
            source = (catalogue.PAYOUT_COMMANDS, message.partition(), message.offset())
            component = f"{self.chain}-payouts"
            produce_refused_alert(
                self.producer, self.prefix, self.codec, source, str(error), component
            )
        flush(self.producer, "a payout dead letter")  # before the command is committed

    def accepts_result(self, result: dict[str, Any]) -> bool:
        """Whether a payout result is one this chain's executor can act on (a restart
        resends what a SUBMITTED result recorded)."""
        return True

    def command_problem(self, command: dict[str, Any]) -> str | None:
        """Why a payout command cannot be paid as given (None: it can)."""
        asset = self.assets.get(command["asset"])
        if asset is None or asset.chain != self.chain:
            return f"asset {command['asset']!r} is not a configured {self.chain} asset"
        if asset.payouts_unavailable:
            return asset.payouts_unavailable
        try:
            amount = quantize_exact(command["amount"], asset.decimals)
        except AmountError as error:
            return f"amount: {error}"
        if amount <= 0:
            return f"amount: {amount} is not positive"
        problem = address_problem(asset, command["destination_address"])
        return None if problem is None else f"destination_address: {problem}"

    def execute(self, command: dict[str, Any]) -> bool:
        """True once the payout is final (now or before); False when stopping first."""
        self.view.wait_caught_up()
        with self.view.lock:
            known = self.facts.results.get(command["payout_id"])
        if known is not None and known["status"] in ("CONFIRMED", "FAILED"):
            return True  # done before a restart: never again
        problem = self.command_problem(command)
        if problem is not None:
            if known is None:  # nothing was sent for it
                self.report(command, "FAILED", reason=Reason.INVALID_COMMAND, detail=problem)
            else:
                log.critical("payout %s: %s, after SUBMITTED", command["payout_id"], problem)
            return True
        asset = self.assets[command["asset"]]
        self.holding = command["payout_id"]
        self.wait_while_breaker_open(asset)
        self.holding = None
        if self.stopping.is_set():
            return False
        with self.view.lock:
            known = self.facts.results.get(command["payout_id"])
        if known is not None and known["status"] in ("CONFIRMED", "FAILED"):
            return True  # done before a restart: never again
        return self.pay(command, asset, known)

    def pay(self, command: dict[str, Any], asset: Asset, known: dict[str, Any] | None) -> bool:
        """Pay once and report the outcome (True), or stop waiting for it (False).

        `known` is the payout's SUBMITTED report from before a restart, if any.
        """
        raise NotImplementedError

    def wait_while_breaker_open(self, asset: Asset) -> None:
        while not self.stopping.is_set():
            with self.view.lock:
                states = (
                    self.facts.breakers.get("global"),
                    self.facts.breakers.get(f"asset:{asset.code}"),
                )
            if "OPEN" not in states:
                return
            self.consumer.pause(self.consumer.assignment())
            self.consumer.poll(0.5)  # keeps the group membership; paused: returns nothing
            self.consumer.resume(self.consumer.assignment())

    def report(self, command: dict[str, Any], status: str, **fields: Any) -> None:
        """Publish a result (acknowledged before the executor goes on); a FAILED one has
        a `reason` (a `Reason`) and may have a `detail` for people."""
        detail = fields.get("detail")
        result = {
            "payout_id": command["payout_id"],
            "account_id": command["account_id"],
            "status": status,
            "tx_hash": fields.get("tx_hash"),
            "network_fee": fields.get("network_fee"),
            "network_fee_asset": fields.get("network_fee_asset"),
            "reason": fields.get("reason"),
            "detail": None if detail is None else str(detail)[:MAX_DETAIL],
            "reported_at": datetime.now(UTC),
            "nonce": fields.get("nonce"),
            "raw_transaction": fields.get("raw_transaction"),
        }
        self.producer.produce(
            self.prefix + catalogue.PAYOUT_RESULTS,
            self.codec.encode(catalogue.PAYOUT_RESULTS, result),
            command["account_id"].encode(),
        )
        flush(self.producer, "a payout result")
        with self.view.lock:
            self.facts.fold(catalogue.PAYOUT_RESULTS, result)
        log.info("payout %s: %s %s", command["payout_id"], status, fields.get("tx_hash") or "")
