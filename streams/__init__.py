"""Stream processing: the worker's application object, intake, the ledger agent, the
reconciliation agent, and the views (whole-ledger nets, request statuses) they serve.

`app` builds the `Engine` from settings (nothing is wired at import); `intake` validates
inputs into the ordered ledger-command log; `ledger/` applies it; `reconciliation/` checks
the ledger against the banks.
"""
