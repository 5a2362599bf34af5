"""Every machine-readable reason the engine gives for refusing or failing something.

One `StrEnum`: every producer of a reason (a request's REJECTED result, a dead letter, an
HTTP error body, a payout's FAILED result) takes it from here, and its value travels
unchanged to the results topic, the API, the sink and the README's list (a test keeps
that list whole). Values are plain strings on the wire.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # the input itself
    MISSING_FIELD = "missing_field"  # a required field is absent or empty
    INVALID_FIELD = "invalid_field"  # a field of the wrong type or grammar
    INVALID_JSON = "invalid_json"  # not a JSON document (or too deep, or not UTF-8)
    INVALID_AMOUNT = "invalid_amount"  # not a plain decimal, not positive, beyond the scale
    INVALID_DATE = "invalid_date"  # not a calendar date
    INVALID_ADDRESS = "invalid_address"  # not payable on the asset's chain and network
    UNKNOWN_KIND = "unknown_kind"  # a request kind other than deposit, withdrawal, transfer
    UNKNOWN_ASSET = "unknown_asset"  # an asset not configured
    AMOUNT_BELOW_MINIMUM = "amount_below_minimum"  # below the asset's min_deposit/withdrawal
    AMOUNT_BELOW_FEE = "amount_below_fee"  # a cross-chain amount the fee would consume
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"  # a balance past what the wire carries
    # what the engine allows now
    DEPOSITS_DISABLED = "deposits_disabled"  # the asset's deposits are switched off
    DEPOSITS_UNAVAILABLE = "deposits_unavailable"  # not observable as configured
    PAYOUTS_DISABLED = "payouts_disabled"  # the asset's payouts are switched off
    PAYOUTS_UNAVAILABLE = "payouts_unavailable"  # nothing can pay it as configured
    PAYOUTS_SUSPENDED = "payouts_suspended"  # reconciliation: Significant
    INSUFFICIENT_FUNDS = "insufficient_funds"  # available < amount + fee
    TOO_MANY_PENDING_REQUESTS = "too_many_pending_requests"  # the account's record is full
    DEPOSIT_ALREADY_REQUESTED = "deposit_already_requested"  # another request awaits it
    REQUEST_EXPIRED = "request_expired"  # created_at past the idempotency window
    CREATED_IN_THE_FUTURE = "created_in_the_future"  # created_at ahead of the ledger's time
    DEPOSIT_NOT_OBSERVED = "deposit_not_observed"  # its deposit never came in the window
    # the ledger's own bookkeeping
    CONFLICTING_DUPLICATE = "conflicting_duplicate"  # a known id with another payload
    CONFLICTING_PAYOUT_RESULT = "conflicting_payout_result"  # a payout already final
    UNKNOWN_PAYOUT = "unknown_payout"  # a result of no prepared payout
    WRONG_PARTITION = "wrong_partition"  # a command for an account of another partition
    # payouts (an executor's FAILED result: nothing was paid)
    PAYOUT_FAILED = "payout_failed"  # a failure reported without a reason of ours
    REVERTED = "reverted"  # the chain ran the transaction and reverted it
    REJECTED_BY_NODE = "rejected_by_node"  # the node refused it before it left the executor
    NONCE_TAKEN = "nonce_taken"  # another transaction took its nonce: it can never be mined
    INPUTS_SPENT = "inputs_spent"  # another transaction spent its inputs: it can never confirm
    INVALID_COMMAND = "invalid_command"  # a payout command the executor cannot pay as given
    NOT_PAYABLE = "not_payable"  # the transaction could not be built
    HOT_WALLET_INSUFFICIENT = "hot_wallet_insufficient"  # too little to spend in the hot wallet
    HELD_BY_CIRCUIT_BREAKER = "held_by_circuit_breaker"  # accepted, held while OPEN
    # the wire
    EMPTY_VALUE = "empty_value"  # a record without a value
    UNDECODABLE = "undecodable"  # not Avro of its topic's schema
    UNKNOWN_SCHEMA = "unknown_schema"  # a writer schema nobody registered
    WRONG_SCHEMA = "wrong_schema"  # the schema of another topic
    # bank files and bank events
    NOT_XML = "not_xml"  # not well-formed XML
    NOT_ALLOWED = "not_allowed"  # a document type declaration (entities of its own)
    UNKNOWN_MESSAGE = "unknown_message"  # not camt.053/054
    UNSUPPORTED_VERSION = "unsupported_version"  # a camt version not read
    UNKNOWN_BANK_ACCOUNT = "unknown_bank_account"  # a bank account no asset is backed by
    CURRENCY_MISMATCH = "currency_mismatch"  # another currency than the bank account's
    NOT_A_REGULAR_FILE = "not_a_regular_file"  # a link, a FIFO, a device in the drop dir
    TOO_LARGE = "too_large"  # a file above the drop directory's bound
    NOT_PUBLISHED = "not_published"  # the broker refused a bank event
    WRONG_MESSAGE = "wrong_message"  # a statement where a notification is due, or back
    # the Postgres sink
    CONSTRAINT_VIOLATION = "constraint_violation"  # a row a constraint refuses
    INVALID_VALUE = "invalid_value"  # a value Postgres cannot store
    UNMAPPABLE_EVENT = "unmappable_event"  # an event no rows can be made of
    # who may (records and API keys)
    UNAUTHENTICATED = "unauthenticated"  # no valid API key, or a record without the engine's MAC
    FORBIDDEN = "forbidden"  # a valid key, outside its role or accounts
    FORBIDDEN_ORIGIN = "forbidden_origin"  # a foreign Host or Origin (DNS rebinding, CSRF)
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # a body that is not declared JSON/XML
    RATE_LIMITED = "rate_limited"  # the key's request rate is spent: try again shortly
    # the HTTP API
    NOT_FOUND = "not_found"  # no such request, discrepancy, account or deposit in suspense
    POOL_EXHAUSTED = "pool_exhausted"  # no free deposit address in the chain's pool
    UNAVAILABLE = "unavailable"  # the broker or the database did not answer
    TIMEOUT = "timeout"  # no result within the wait
    BANK_API_UNAVAILABLE = "bank_api_unavailable"  # the intraday bank API did not answer
    # a defect shown by one input (kept, the component goes on)
    INTERNAL_ERROR = "internal_error"
