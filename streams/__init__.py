"""Stream processing: the Faust app, its agents and tables, and the HTTP API it serves.

`app` builds the Faust application; `intake` validates inputs into the ordered ledger
command log; `api` serves the HTTP endpoints from the worker's aiohttp server.
"""
