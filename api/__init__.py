"""A worker's surface to the outside: HTTP views, the bank drop directory, the bank API.

Above the stream processing and the connectors (it imports both; nothing but the entry
points imports it): `requests` (submissions, results, balances), `health` (readiness,
stats, metrics), `bank` (camt files and JSON in, the drop directory, the intraday poll),
`reconciliation` (the operator's reconciliation endpoints and gauges), `audit`. Every
error answers in one shape (`responses`), with a `core.reasons.Reason`.
"""
