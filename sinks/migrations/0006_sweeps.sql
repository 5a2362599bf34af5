-- Sweeps from deposit addresses to the hot or cold wallet (issue 23): one row per sweep,
-- its newest state (a final state is never replaced by SUBMITTED).

CREATE TABLE sweeps (
    sweep_id text PRIMARY KEY,
    chain text NOT NULL,
    asset text NOT NULL,
    from_address text NOT NULL,
    to_address text NOT NULL,
    to_role text NOT NULL CHECK (to_role IN ('HOT', 'COLD')),
    amount numeric(38, 18) NOT NULL,
    state text NOT NULL CHECK (state IN ('SUBMITTED', 'CONFIRMED', 'FAILED')),
    tx_hash text NOT NULL,
    network_fee numeric(38, 18),
    network_fee_asset text NOT NULL,
    reason text,
    updated_at timestamptz NOT NULL
);
CREATE INDEX sweeps_from_address ON sweeps (from_address);
