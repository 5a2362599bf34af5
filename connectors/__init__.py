"""Connectors: the only parts that touch the outside world.

Chain watchers (Ethereum/ERC20 with web3, Bitcoin over its JSON-RPC), payout executors and
bank connectors (ISO 20022 camt.053/054 with lxml) turn external facts into events on the
catalogue's topics, or payout commands into chain transactions. They import `topics` and
`tokengine`, never `streams` or `sinks`.
"""
