-- Reconciliation as finance and the regulator read it.

CREATE TABLE emi_accounts (
    account_id text PRIMARY KEY,
    asset text NOT NULL,
    currency text NOT NULL,
    ledger_balance numeric(38, 18) NOT NULL,
    bank_balance numeric(38, 18) NOT NULL,
    reserved_balance numeric(38, 18) NOT NULL,
    available_balance numeric(38, 18) NOT NULL,
    reconciliation_status text NOT NULL,
    reconciliation_source text NOT NULL,
    reconciliation_difference numeric(38, 18) NOT NULL,
    last_check_id text NOT NULL,
    last_reconciled_at timestamptz NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE emi_account_snapshots (
    account_id text NOT NULL,
    snapshot_date date NOT NULL,
    asset text NOT NULL,
    statement_message_id text NOT NULL,
    opening_balance numeric(38, 18) NOT NULL,
    closing_balance numeric(38, 18) NOT NULL,
    ledger_balance numeric(38, 18) NOT NULL,
    difference numeric(38, 18) NOT NULL,
    level text NOT NULL,
    entries_matched bigint NOT NULL,
    entries_unmatched bigint NOT NULL,
    replaces text,
    report_path text,
    created_at timestamptz NOT NULL,
    UNIQUE (account_id, snapshot_date)
);

CREATE TABLE reconciliation_results (
    check_id text PRIMARY KEY,
    tier text NOT NULL,
    account_id text NOT NULL,
    asset text NOT NULL,
    ledger_balance numeric(38, 18) NOT NULL,
    bank_balance numeric(38, 18) NOT NULL,
    difference numeric(38, 18) NOT NULL,
    deviation_pct numeric(38, 18) NOT NULL,
    level text NOT NULL,
    action text NOT NULL,
    checked_at timestamptz NOT NULL
);

CREATE TABLE reconciliation_discrepancies (
    discrepancy_id text PRIMARY KEY,
    account_id text NOT NULL,
    type text NOT NULL CHECK (type IN ('MISSING_TXN', 'DUPLICATE_TXN', 'AMOUNT_MISMATCH', 'BALANCE_MISMATCH')),
    severity text NOT NULL,
    expected numeric(38, 18),
    actual numeric(38, 18),
    difference numeric(38, 18),
    source_system text NOT NULL,
    reference text,
    status text NOT NULL CHECK (status IN ('OPEN', 'INVESTIGATING', 'RESOLVED', 'ESCALATED')),
    detected_at timestamptz NOT NULL
);

CREATE TABLE breaker_history (
    scope text NOT NULL,
    state text NOT NULL,
    level text NOT NULL,
    reason text NOT NULL,
    actor text NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (scope, changed_at, state, actor)
);
