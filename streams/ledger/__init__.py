"""The ledger: every money movement applied exactly once to one record per account.

`apply` (pure, per command) with its flows (`deposits`, `payouts`, `transfers`), the
bookkeeping beside them (`postings`, `results`, `marks`, `awaiting`, `invariants`), the
record (`records`) and the command (`commands`); `batch` applies a batch of commands as
the agent does (pure too, over any record store); `agent` runs it in a Faust worker.
"""
