"""The topic catalogue: the one place that declares every topic of the engine.

Each entry says what the key is, which Avro schema the value has, how long it is kept,
and which components write and read it. Code refers to topics by the names below
(`catalogue.LEDGER_COMMANDS`), never by literal strings; the prefix comes from settings.
"""

from __future__ import annotations

from dataclasses import dataclass

ACCOUNT_PARTITIONS = 8  # every account-keyed topic (and Faust's changelogs) has this many
DAY_MS = 24 * 3600 * 1000
FOREVER = -1


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    value_schema: str
    cleanup_policy: str
    retention_ms: int
    writers: tuple[str, ...]
    readers: tuple[str, ...]
    doc: str

    def full_name(self, prefix: str) -> str:
        return f"{prefix}{self.name}"

    @property
    def config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


def _topic(
    name,
    key,
    schema,
    writers,
    readers,
    doc,
    *,
    retention_ms=FOREVER,
    cleanup="delete",
    partitions=ACCOUNT_PARTITIONS,
) -> TopicSpec:
    return TopicSpec(name, partitions, key, schema, cleanup, retention_ms, writers, readers, doc)


DEPOSIT_REQUESTS = "deposit-requests"
WITHDRAWAL_REQUESTS = "withdrawal-requests"
TRANSFER_REQUESTS = "transfer-requests"
ADDRESS_BINDINGS = "address-bindings"
DEPOSIT_ASSIGNMENTS = "deposit-assignments"
PRICES = "prices"
CHAIN_OBSERVATIONS = "chain-observations"
BANK_NOTIFICATIONS = "bank-notifications"
BANK_STATEMENTS = "bank-statements"
BANK_BALANCES = "bank-balances"
WALLET_OUTFLOWS = "wallet-outflows"
WALLET_BALANCES = "wallet-balances"
TRANSFER_CREDITS = "transfer-credits"
LEDGER_COMMANDS = "ledger-commands"
LEDGER_ENTRIES = "ledger-entries"
BALANCE_UPDATES = "balance-updates"
PAYOUT_COMMANDS = "payout-commands"
PAYOUT_RESULTS = "payout-results"
SWEEP_RESULTS = "sweep-results"
REQUEST_RESULTS = "request-results"
RECONCILIATION_RESULTS = "reconciliation-results"
DISCREPANCIES = "discrepancies"
EOD_SNAPSHOTS = "eod-snapshots"
BREAKER_STATE = "breaker-state"
ALERTS = "alerts"
DEAD_LETTERS = "dead-letters"
API_KEYS = "api-keys"

UPSTREAM = ("api", "cli", "upstream producers")

TOPICS: tuple[TopicSpec, ...] = (
    _topic(
        DEPOSIT_REQUESTS,
        "account_id",
        "DepositRequest",
        UPSTREAM,
        ("intake",),
        "Users announce deposits.",
        retention_ms=30 * DAY_MS,
    ),
    _topic(
        WITHDRAWAL_REQUESTS,
        "account_id",
        "WithdrawalRequest",
        UPSTREAM,
        ("intake",),
        "Users ask for payouts.",
        retention_ms=30 * DAY_MS,
    ),
    _topic(
        TRANSFER_REQUESTS,
        "account_id",
        "TransferRequest",
        UPSTREAM,
        ("intake",),
        "Internal and cross-chain transfers.",
        retention_ms=30 * DAY_MS,
    ),
    _topic(
        ADDRESS_BINDINGS,
        "chain:address",
        "AddressBinding",
        ("operator", "cli"),
        ("chain watchers",),
        "Deposit address -> account.",
        cleanup="compact",
    ),
    _topic(
        DEPOSIT_ASSIGNMENTS,
        "account_id (suspense)",
        "DepositAssignment",
        ("operator", "cli"),
        ("intake",),
        "Deposits held in suspense, assigned by an operator to their account.",
    ),
    _topic(
        PRICES,
        "asset",
        "AssetPrice",
        ("price feed", "cli"),
        ("chain watchers",),
        "USD prices for confirmation levels.",
        cleanup="compact",
        partitions=1,
    ),
    _topic(
        CHAIN_OBSERVATIONS,
        "account_id",
        "ChainObservation",
        ("eth watcher", "btc watcher"),
        ("intake",),
        "Transfers to deposit addresses, as confirmations grow.",
    ),
    _topic(
        BANK_NOTIFICATIONS,
        "bank account_id",
        "BankNotification",
        ("bank connector",),
        ("reconciliation tier 1",),
        "camt.054 notifications.",
    ),
    _topic(
        BANK_STATEMENTS,
        "bank account_id",
        "BankStatement",
        ("bank connector",),
        ("reconciliation tier 3",),
        "camt.053 end-of-day statements.",
    ),
    _topic(
        BANK_BALANCES,
        "bank account_id",
        "BankBalance",
        ("intraday balance client",),
        ("reconciliation tier 2",),
        "Intraday bank balances.",
    ),
    _topic(
        WALLET_OUTFLOWS,
        "chain",
        "WalletOutflow",
        ("eth watcher", "btc watcher"),
        ("reconciliation (wallets)",),
        "Transactions taking value out of an operator wallet, to match with payouts.",
    ),
    _topic(
        WALLET_BALANCES,
        "chain",
        "WalletBalance",
        ("eth watcher", "btc watcher"),
        ("reconciliation (wallets)",),
        "What the operator's wallets hold per asset at a block, to compare with the ledger.",
    ),
    _topic(
        TRANSFER_CREDITS,
        "account_id",
        "LedgerCommand",
        ("ledger",),
        ("intake",),
        "Credit legs of internal transfers, for the receiving account's partition.",
    ),
    _topic(
        LEDGER_COMMANDS,
        "account_id",
        "LedgerCommand",
        ("intake",),
        ("ledger",),
        "Validated ledger inputs in the one order the ledger applies them; partition p "
        "has one writer, the intake instance that owns partition p of every input.",
    ),
    _topic(
        LEDGER_ENTRIES,
        "account_id",
        "LedgerTransaction",
        ("ledger",),
        ("postgres sink", "reconciliation"),
        "Balanced double-entry transactions.",
    ),
    _topic(
        BALANCE_UPDATES,
        "account_id",
        "BalanceUpdate",
        ("ledger",),
        ("postgres sink", "api", "downstream"),
        "Balances after each change.",
        cleanup="compact",
    ),
    _topic(
        PAYOUT_COMMANDS,
        "account_id",
        "PayoutCommand",
        ("ledger",),
        ("payout executors",),
        "Prepared payouts to execute.",
    ),
    _topic(
        PAYOUT_RESULTS,
        "account_id",
        "PayoutResult",
        ("payout executors",),
        ("intake",),
        "Submitted / confirmed / failed payouts.",
    ),
    _topic(
        SWEEP_RESULTS,
        "treasury (the operator's record)",
        "SweepResult",
        ("eth sweeper",),
        ("intake", "reconciliation (wallets)"),
        "Sweeps from deposit addresses to the hot or cold wallet: submitted / confirmed / failed.",
    ),
    _topic(
        REQUEST_RESULTS,
        "request_id",
        "RequestResult",
        ("intake", "ledger"),
        ("api", "downstream"),
        "One outcome per request.",
    ),
    _topic(
        RECONCILIATION_RESULTS,
        "bank account_id",
        "ReconciliationResult",
        ("reconciliation",),
        ("postgres sink", "dashboards"),
        "Every check's outcome.",
    ),
    _topic(
        DISCREPANCIES,
        "bank account_id",
        "Discrepancy",
        ("reconciliation",),
        ("postgres sink", "operators"),
        "Differences to investigate.",
    ),
    _topic(
        EOD_SNAPSHOTS,
        "bank account_id",
        "EodSnapshot",
        ("reconciliation tier 3",),
        ("postgres sink", "regulatory reporting"),
        "One snapshot per bank account and date, from its camt.053 statement.",
    ),
    _topic(
        BREAKER_STATE,
        "scope",
        "BreakerState",
        ("reconciliation", "ledger watch", "cli"),
        ("intake", "payout executors", "api"),
        "Circuit breaker changes, each written to every partition (see topics.breaker).",
    ),
    _topic(
        ALERTS,
        "alert kind",
        "Alert",
        ("ledger", "reconciliation", "ledger watch"),
        ("operators",),
        "Operator alerts.",
        partitions=1,
    ),
    _topic(
        API_KEYS,
        "key_id",
        "ApiKey",
        ("operator", "cli"),
        ("every worker (the key view)", "intake (authenticity only)"),
        "API keys: each key's role, scope and status (the secret only as its hash).",
        partitions=1,
    ),
    _topic(
        DEAD_LETTERS,
        "source topic",
        "DeadLetter",
        ("every consumer",),
        ("operators",),
        "Messages that could not be decoded or validated, with the reason.",
        partitions=1,
    ),
)

BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in TOPICS}

# Who may sign the records of each topic (`topics.authentication`): every topic but the
# request topics is written by the engine alone, each by the processes named here.
WORKER, CONNECTORS, SINK, OPERATOR = "worker", "connectors", "sink", "operator"
SIGNING_PROCESSES = (WORKER, CONNECTORS, SINK, OPERATOR)
SIGNERS: dict[str, tuple[str, ...]] = {
    ADDRESS_BINDINGS: (OPERATOR, WORKER),
    DEPOSIT_ASSIGNMENTS: (OPERATOR, WORKER),  # the worker's API: an operator key's decision
    PRICES: (OPERATOR, WORKER),
    CHAIN_OBSERVATIONS: (CONNECTORS, WORKER),  # the worker's bank connector: bank credits
    BANK_NOTIFICATIONS: (WORKER,),
    BANK_STATEMENTS: (WORKER,),
    BANK_BALANCES: (WORKER,),
    WALLET_OUTFLOWS: (CONNECTORS,),
    WALLET_BALANCES: (CONNECTORS,),
    TRANSFER_CREDITS: (WORKER,),
    LEDGER_COMMANDS: (WORKER,),
    LEDGER_ENTRIES: (WORKER,),
    BALANCE_UPDATES: (WORKER,),
    PAYOUT_COMMANDS: (WORKER,),
    PAYOUT_RESULTS: (CONNECTORS,),
    SWEEP_RESULTS: (CONNECTORS,),
    REQUEST_RESULTS: (WORKER,),
    RECONCILIATION_RESULTS: (WORKER,),
    DISCREPANCIES: (WORKER, OPERATOR),
    EOD_SNAPSHOTS: (WORKER,),
    BREAKER_STATE: (WORKER, OPERATOR),
    ALERTS: (WORKER, CONNECTORS, SINK, OPERATOR),
    DEAD_LETTERS: (WORKER, CONNECTORS, SINK),
    API_KEYS: (OPERATOR, WORKER),
}


def spec(name: str) -> TopicSpec:
    return BY_NAME[name]


def short_name(full_name: str, prefix: str) -> str:
    """The catalogue name of a full topic name (strips the prefix)."""
    if not full_name.startswith(prefix) or full_name[len(prefix) :] not in BY_NAME:
        raise KeyError(f"not a catalogue topic: {full_name}")
    return full_name[len(prefix) :]


# The request topics, by request kind (what clients send: api, cli, upstream producers).
REQUEST_TOPICS: dict[str, str] = {
    "deposit": DEPOSIT_REQUESTS,
    "withdrawal": WITHDRAWAL_REQUESTS,
    "transfer": TRANSFER_REQUESTS,
}

# The topic (and so the schema) of a LedgerCommand's payload, by command kind.
COMMAND_PAYLOAD_TOPICS: dict[str, str] = {
    "DEPOSIT_REQUEST": DEPOSIT_REQUESTS,
    "WITHDRAWAL_REQUEST": WITHDRAWAL_REQUESTS,
    "TRANSFER_REQUEST": TRANSFER_REQUESTS,
    "TRANSFER_CREDIT": TRANSFER_REQUESTS,
    "CHAIN_OBSERVATION": CHAIN_OBSERVATIONS,
    "PAYOUT_RESULT": PAYOUT_RESULTS,
    "BREAKER_CHANGE": BREAKER_STATE,
    "DEPOSIT_ASSIGNMENT": DEPOSIT_ASSIGNMENTS,
    "ASSIGNMENT_CREDIT": DEPOSIT_ASSIGNMENTS,
    "SWEEP_RESULT": SWEEP_RESULTS,
}
