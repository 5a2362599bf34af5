"""The bottom layer: pure definitions every other package builds on.

Settings, the asset configuration, money, the field grammars (ids, times, JSON, addresses),
command and payout ids, reason codes, the chart of accounts, request validation, what an
observation may credit and what a bank event may say, the breaker's rules, the camt
parser. No I/O but reading configuration files; imports nothing of the engine's above it.
"""
