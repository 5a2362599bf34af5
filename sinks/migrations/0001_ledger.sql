-- The ledger as downstream users read it. Every amount is NUMERIC (never float).
-- Rows are keyed by the event ids the engine makes, so a replay of the topics changes nothing.

CREATE TABLE sink_offsets (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);

CREATE TABLE ledger_transactions (
    transaction_id text PRIMARY KEY,
    account_id text NOT NULL,
    kind text NOT NULL,
    cause_id text NOT NULL,
    asset text NOT NULL,
    sequence bigint NOT NULL CHECK (sequence > 0),
    previous_hash text NOT NULL,
    hash text NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (account_id, sequence)
);

CREATE TABLE ledger_postings (
    transaction_id text NOT NULL REFERENCES ledger_transactions (transaction_id),
    posting_index integer NOT NULL,
    ledger_account text NOT NULL,
    direction text NOT NULL CHECK (direction IN ('DEBIT', 'CREDIT')),
    amount numeric(38, 18) NOT NULL CHECK (amount > 0),
    PRIMARY KEY (transaction_id, posting_index)
);
CREATE INDEX ledger_postings_by_account ON ledger_postings (ledger_account);

-- Balances after each change (the newest version per account and asset wins).
CREATE TABLE accounts (
    account_id text NOT NULL,
    asset text NOT NULL,
    balance numeric(38, 18) NOT NULL CHECK (balance >= 0),
    reserved numeric(38, 18) NOT NULL CHECK (reserved >= 0),
    available numeric(38, 18) NOT NULL,
    version bigint NOT NULL,
    cause_id text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, asset)
);

CREATE TABLE deposits (
    deposit_id text PRIMARY KEY,
    account_id text NOT NULL,
    chain text NOT NULL,
    asset text NOT NULL,
    tx_hash text NOT NULL,
    output_index bigint NOT NULL,
    amount numeric(38, 18) NOT NULL,
    status text NOT NULL,
    confirmations bigint NOT NULL,
    confirmations_required bigint NOT NULL,
    block_number bigint NOT NULL,
    block_hash text NOT NULL,
    observed_at timestamptz NOT NULL
);

CREATE TABLE payouts (
    payout_id text PRIMARY KEY,
    account_id text NOT NULL,
    request_id text,
    chain text,
    asset text,
    amount numeric(38, 18),
    fee numeric(38, 18),
    destination_address text,
    state text NOT NULL,
    tx_hash text,
    network_fee numeric(38, 18),
    reason text,
    created_at timestamptz,
    updated_at timestamptz NOT NULL
);

CREATE TABLE request_results (
    request_id text PRIMARY KEY,
    account_id text NOT NULL,
    request_kind text NOT NULL,
    status text NOT NULL,
    reason text,
    asset text,
    amount numeric(38, 18),
    fee numeric(38, 18),
    version bigint NOT NULL,
    decided_at timestamptz NOT NULL
);

-- The audit trail: every operation once, in the order the sink stored it (a cursor).
CREATE TABLE audit_log (
    position bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    topic text NOT NULL,
    account_id text,
    operation text NOT NULL,
    changes jsonb NOT NULL,
    occurred_at timestamptz NOT NULL
);
