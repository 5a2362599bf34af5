"""`GET /api/v1/wallets`: the operator's wallets against the ledger, and their sweeps.

Answers `streams.reconciliation.wallet_report` over the worker's whole-topic
reconciliation view, so every worker answers the same (operators and auditors).
"""

from __future__ import annotations

from faust import web

from streams.app import Engine
from streams.reconciliation.state import ReconciliationView
from streams.reconciliation.wallet_report import wallet_report
from topics.jsonable import jsonable


def install(engine: Engine, view: ReconciliationView) -> None:
    @engine.app.page("/api/v1/wallets")
    class Wallets(web.View):
        async def get(self, request: web.Request) -> web.Response:
            with view.lock:
                results = list(view.state.latest.values())
                sweeps = list(view.state.sweeps.values())
            return self.json(jsonable(wallet_report(results, sweeps, engine.assets)))
