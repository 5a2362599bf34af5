"""The records an operator's decision makes: a deposit-address binding, the assignment of
a deposit held in suspense, a price, a breaker change, an API key and its revocation; each
checked by one set of rules whichever door it comes through (the CLI as the local owner,
the API with an operator key), each naming its actor, and published signed
(`topics.authentication`) and acknowledged.

Every builder raises `FieldError` naming the field before anything is produced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core import access, fields
from core.addresses import binding_problem
from core.assets import AssetCatalogue
from core.bindings import Bindings
from core.breaker import scope_problem
from core.fields import FieldError
from core.money import AmountError, parse_amount, scale_unit
from core.reasons import Reason
from core.requests import amount_field
from topics import catalogue
from topics.breaker import breaker_record, broadcast
from topics.codec import Codec
from topics.kafka import flush
from topics.tail import read_to_end

CHAINS = ("ethereum", "bitcoin", "bank")
BREAKER_ACTIONS = {  # action -> (state, level)
    "trip": ("OPEN", "CRITICAL"),
    "suspend": ("SUSPENDED", "SIGNIFICANT"),
    "reset": ("CLOSED", "OK"),
}


def binding(
    settings: Any, assets: AssetCatalogue, chain: object, address: object, account: object, actor
) -> tuple[str, dict[str, Any]]:
    """(key, AddressBinding): an address valid for its chain and network, not bound to
    another account already (consumers keep the first binding: `core.bindings`)."""
    if chain not in CHAINS:
        raise FieldError(Reason.INVALID_FIELD, "chain", f"one of {', '.join(CHAINS)}")
    fields.account_id(account, "account")
    network = next((a.network for a in assets.on_chain("bitcoin")), "bitcoin")
    problem = binding_problem(chain, address, network)
    if problem:
        raise FieldError(Reason.INVALID_ADDRESS, "address", problem)
    normalize = {"ethereum": str.lower, "bank": str.upper}.get(chain, str)
    bindings = Bindings(chain, normalize, network)
    for value in read_to_end(settings, catalogue.ADDRESS_BINDINGS):
        bindings.fold(value)
    record = {
        "chain": chain,
        "address": address,
        "account_id": account,
        "bound_at": datetime.now(UTC),
        "actor": actor,
    }
    problem = bindings.problem(record)
    if problem:
        raise FieldError(Reason.INVALID_FIELD, "address", f"{chain}:{address}: {problem}")
    return f"{chain}:{address}", record


def assignment(assets: AssetCatalogue, body: dict[str, Any], actor: str) -> dict[str, Any]:
    """A DepositAssignment: a deposit held in suspense, its asset and amount as credited
    there (the ledger checks them against its mark), the user account, and why."""
    deposit_id = body.get("deposit_id")
    if not isinstance(deposit_id, str) or deposit_id.count(":") < 2:
        raise FieldError(Reason.INVALID_FIELD, "deposit_id", "chain:tx_hash:index")
    asset = assets.get(body.get("asset"))
    if asset is None:
        raise FieldError(
            Reason.UNKNOWN_ASSET, "asset", f"unknown asset {fields.shown(body.get('asset'))}"
        )
    amount = amount_field(body, "amount", asset, scale_unit(asset.decimals))
    note = body.get("note")
    if not isinstance(note, str) or not note.strip():
        raise FieldError(Reason.MISSING_FIELD, "note", "why the deposit is theirs (evidence)")
    return {
        "deposit_id": deposit_id,
        "asset": asset.code,
        "amount": amount,
        "account_id": fields.account_id(body.get("account"), "account"),
        "note": note.strip()[:500],
        "assigned_at": datetime.now(UTC),
        "actor": actor,
    }


def price(assets: AssetCatalogue, asset: object, usd_price: object, actor: str) -> dict[str, Any]:
    """An AssetPrice: a configured asset, a positive plain decimal."""
    if not isinstance(asset, str) or asset not in assets:
        raise FieldError(Reason.UNKNOWN_ASSET, "asset", f"unknown asset {fields.shown(asset)}")
    try:
        value = parse_amount(usd_price)
    except AmountError as error:
        raise FieldError(Reason.INVALID_AMOUNT, "usd_price", str(error)) from None
    if value <= 0:
        message = "must be positive (a price of 0 would need the fewest confirmations)"
        raise FieldError(Reason.INVALID_AMOUNT, "usd_price", message)
    return {"asset": asset, "usd_price": value, "as_of": datetime.now(UTC), "actor": actor}


def breaker_change(
    assets: AssetCatalogue, action: object, scope: object, reason: object, actor: str
) -> dict[str, Any]:
    """A BreakerState change: trip (OPEN), suspend (SUSPENDED) or reset (CLOSED)."""
    if action not in BREAKER_ACTIONS:
        raise FieldError(Reason.INVALID_FIELD, "action", f"one of {', '.join(BREAKER_ACTIONS)}")
    problem = scope_problem(scope, assets.assets)
    if problem:
        raise FieldError(Reason.INVALID_FIELD, "scope", problem)
    if not isinstance(reason, str) or not reason.strip():
        raise FieldError(Reason.MISSING_FIELD, "reason", "is required (why, recorded)")
    state, level = BREAKER_ACTIONS[action]
    return breaker_record(scope, state, level, reason[:500], actor)


def api_key(role: object, accounts: object, label: object, actor: str) -> tuple[str, dict]:
    """(the new key, shown once; its ApiKey record)."""
    if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
        raise FieldError(Reason.INVALID_FIELD, "accounts", "a list of account ids")
    if not isinstance(label, str):
        raise FieldError(Reason.INVALID_FIELD, "label", "a string")
    role = role.upper() if isinstance(role, str) else role
    return access.new_key(role, accounts, label, actor, datetime.now(UTC))


def publish(producer: Any, prefix: str, codec: Codec, topic: str, key: str, record: dict) -> None:
    """One record, signed by `producer` (a `SigningProducer`), acknowledged before return;
    a breaker change goes to every partition with its alert (`topics.breaker.broadcast`)."""
    if topic == catalogue.BREAKER_STATE:

        def produce(name: str, record_key: str, value: bytes, partition: int | None) -> None:
            extra = {} if partition is None else {"partition": partition}
            producer.produce(prefix + name, value, record_key.encode(), **extra)

        broadcast(produce, codec, record)
    else:
        producer.produce(prefix + topic, codec.encode(topic, record), key.encode())
    flush(producer, topic)


def issue_key(
    settings: Any, codec: Codec, role: str, accounts: list[str], label: str, actor: str
) -> tuple[str, dict[str, Any]]:
    """Make a key as the engine's owner (the record keys' holder: `up`, the demo, tests)
    and publish its record; (the key, its record)."""
    from topics.authentication import signing_producer

    token, record = api_key(role, accounts, label, actor)
    producer = signing_producer(settings, catalogue.OPERATOR)
    publish(producer, settings.topic_prefix, codec, catalogue.API_KEYS, record["key_id"], record)
    return token, record


def republish_key(settings: Any, codec: Codec, token: str, record: dict[str, Any]) -> None:
    """Publish a kept key's record again (a broker that lost its topics: the embedded
    default without durable storage) when the key is not on the api-keys topic."""
    from topics.authentication import signing_producer

    known = {r["key_id"] for r in read_to_end(settings, catalogue.API_KEYS)}
    if record["key_id"] in known:
        return
    if record["secret_sha256"] != access.secret_sha256(token):
        raise ValueError("the kept key does not match its record")
    producer = signing_producer(settings, catalogue.OPERATOR)
    publish(producer, settings.topic_prefix, codec, catalogue.API_KEYS, record["key_id"], record)
