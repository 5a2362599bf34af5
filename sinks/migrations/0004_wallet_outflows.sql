-- Operator-wallet outflows that match no payout are discrepancies too (issue 23).

ALTER TABLE reconciliation_discrepancies DROP CONSTRAINT reconciliation_discrepancies_type_check;
ALTER TABLE reconciliation_discrepancies ADD CONSTRAINT reconciliation_discrepancies_type_check
    CHECK (type IN ('MISSING_TXN', 'DUPLICATE_TXN', 'AMOUNT_MISMATCH', 'BALANCE_MISMATCH',
                    'UNEXPLAINED_OUTFLOW'));
