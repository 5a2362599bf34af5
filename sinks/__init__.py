"""Sinks: materialise the ledger and reconciliation topics into Postgres (psycopg 3).

Reads topics only; never imported by agents or connectors.
"""
