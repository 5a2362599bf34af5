"""The reconciliation operator surface: HTTP endpoints, health, summary and gauges.

`POST /api/v1/reconciliation/camt054` (XML or the JSON entry shape) publishes the
notification and answers with its tier-1 result; `.../intraday/{account_id|all}` (also
spelled `intradey`, as existing clients call it) asks the bank API and answers with the
tier-2 result; `.../eod` takes a camt.053 and answers with the snapshot and findings.
`GET .../summary` and `GET .../health` (503 while a breaker halts payouts) read the
whole-topic reconciliation view, so every worker answers the same.
`POST .../discrepancies/{id}` moves a discrepancy through its statuses.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from faust import web

from api.access import principal
from api.bank import BankIntake, camt_error, in_thread
from api.responses import error, refused
from connectors.intraday import IntradayError
from core import breaker, ids
from core.access import AUDITOR, OPERATOR
from core.camt import CamtError
from core.fields import FieldError, load_json
from core.reasons import Reason
from streams import metrics
from streams.app import Engine
from streams.reconciliation.state import ReconciliationView
from topics import catalogue
from topics.jsonable import jsonable
from topics.kafka import flush

RESULT_WAIT_S = 20.0
DISCREPANCY_STATUSES = ("OPEN", "INVESTIGATING", "RESOLVED", "ESCALATED")
GAUGES_INTERVAL_S = 1.0
Extra = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def result_body(result: dict[str, Any]) -> dict[str, Any]:
    return jsonable(
        {
            "check_id": result["check_id"],
            "tier": result["tier"],
            "account_id": result["account_id"],
            "asset": result["asset"],
            "ledger_balance": result["ledger_balance"],
            "bank_balance": result["bank_balance"],
            "difference": result["difference"],
            "deviation_pct": result["deviation_pct"],
            "threshold_level": result["level"],
            "action_taken": result["action"],
            "checked_at": result["checked_at"],
        }
    )


class ReconciliationApi:
    """The endpoints and the gauges, over the bank intake and the reconciliation view."""

    def __init__(self, engine: Engine, bank: BankIntake, view: ReconciliationView) -> None:
        self.engine, self.bank, self.view, self.state = engine, bank, view, view.state
        self.gauges_version = -1  # the state's alarm_version the gauges show
        engine.app.timer(GAUGES_INTERVAL_S, name="reconciliation_gauges")(self.refresh_gauges)
        self.install(engine.app)

    # -- answers -------------------------------------------------------------------------

    async def wait_for_result(self, check_id: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + RESULT_WAIT_S
        while time.monotonic() < deadline:
            with self.view.lock:
                result = self.state.results.get(check_id)
            if result is not None:
                return result
            await asyncio.sleep(0.005)
        return None

    async def answer(self, view: web.View, checks: dict[str, Extra | None]) -> web.Response:
        """Each check's result (with what its `Extra` adds), once the view has it."""
        results = []
        for check_id, extra in checks.items():
            result = await self.wait_for_result(check_id)
            if result is None:
                return error(view, 504, Reason.TIMEOUT, f"no result for {check_id} yet")
            body = result_body(result)
            if extra is not None:
                body.update(await extra(result))
            results.append(body)
        return view.json(results[0] if len(results) == 1 else {"results": results})

    async def camt054(self, view: web.View, request: web.Request) -> web.Response:
        source = "api:/api/v1/reconciliation/camt054"
        try:
            submission = await self.bank.submit_body(request, source)
        except CamtError as problem:
            return camt_error(view, problem)
        if submission.kind == "camt.053":
            message = "a camt.053 statement: POST it to /api/v1/reconciliation/eod"
            return error(view, 400, Reason.WRONG_MESSAGE, message)
        duplicates = set(submission.duplicates)

        def duplicate(message_id: str) -> Extra:
            async def extra(_result: dict[str, Any]) -> dict[str, Any]:
                return {"duplicate": message_id in duplicates}

            return extra

        checks = {
            ids.tier1_check(e["account_id"], e["message_id"]): duplicate(e["message_id"])
            for e in submission.events
        }
        return await self.answer(view, checks)

    async def intraday(self, view: web.View, account_id: str) -> web.Response:
        accounts = self.bank.bank_accounts() if account_id == "all" else [account_id]
        if account_id != "all" and self.engine.assets.by_bank_account(account_id) is None:
            message = f"no asset is backed by {account_id}"
            return error(view, 404, Reason.UNKNOWN_BANK_ACCOUNT, message)

        async def drift(result: dict[str, Any]) -> dict[str, Any]:
            return {"drift_pct_per_check": str(self.state.drift(result["account_id"]))}

        checks: dict[str, Extra | None] = {}
        for account in accounts:
            try:
                balance = await in_thread(self.bank.publish_intraday_balance, account)
            except IntradayError as problem:
                return error(view, 503, Reason.BANK_API_UNAVAILABLE, str(problem))
            as_of_ms = int(balance["as_of"].timestamp() * 1000)
            checks[ids.tier2_check(account, as_of_ms)] = drift
        return await self.answer(view, checks)

    async def end_of_day(self, view: web.View, request: web.Request) -> web.Response:
        try:
            submission = await self.bank.submit_body(request, "api:/api/v1/reconciliation/eod")
        except CamtError as problem:
            return camt_error(view, problem)
        if submission.kind != "camt.053":
            return error(view, 400, Reason.WRONG_MESSAGE, "end of day takes a camt.053 statement")
        checks = {
            ids.tier3_check(e["account_id"], e["statement_date"], e["message_id"]): self.details(
                e["account_id"], e["statement_date"], e["message_id"]
            )
            for e in submission.events
        }
        return await self.answer(view, checks)

    def details(self, account_id: str, day: str, message_id: str) -> Extra:
        """The check's snapshot and findings: written before its result, maybe read after."""

        async def extra(result: dict[str, Any]) -> dict[str, Any]:
            await in_thread(self.view.view.wait_caught_up)
            deadline = time.monotonic() + RESULT_WAIT_S
            snapshot = None
            while time.monotonic() < deadline:
                with self.view.lock:
                    snapshot = self.state.snapshots.get(ids.snapshot(account_id, day))
                if snapshot is not None and snapshot["statement_message_id"] == message_id:
                    break
                await asyncio.sleep(0.005)
            prefix = result["check_id"] + ":"
            with self.view.lock:
                findings = [
                    d
                    for d in self.state.discrepancies.values()
                    if d["discrepancy_id"].startswith(prefix)
                ]
            return jsonable({"snapshot": snapshot, "discrepancies": findings})

        return extra

    async def discrepancy(self, view: web.View, request: web.Request, discrepancy_id: str):
        try:
            body = load_json(await request.read())
        except FieldError as problem:
            return refused(view, problem)
        status = body.get("status") if isinstance(body, dict) else None
        if status not in DISCREPANCY_STATUSES:
            message = f"status: one of {', '.join(DISCREPANCY_STATUSES)}"
            return error(view, 400, Reason.INVALID_FIELD, message, "status")
        with self.view.lock:
            current = self.state.discrepancies.get(discrepancy_id)
        if current is None:
            return error(view, 404, Reason.NOT_FOUND, discrepancy_id)
        caller = principal(request)
        actor = caller.actor if caller is not None else None
        updated = {**current, "status": status, "detected_at": current["detected_at"]}
        updated["actor"] = actor
        producer = self.bank.connector.producer
        producer.produce(
            self.engine.settings.topic_prefix + catalogue.DISCREPANCIES,
            self.engine.codec.encode(catalogue.DISCREPANCIES, updated),
            current["account_id"].encode(),
        )
        await in_thread(flush, producer, "the discrepancy's status")
        return view.json(jsonable(updated))

    def summary(self) -> dict[str, Any]:
        accounts = self.bank.bank_accounts()
        with self.view.lock:
            latest = self.state.latest
            levels = {a: latest[a]["level"] for a in accounts if a in latest}
            open_items = [d for d in self.state.discrepancies.values() if d["status"] != "RESOLVED"]
        ok = sum(1 for level in levels.values() if level == "OK")
        return {
            "total_accounts": len(accounts),
            "accounts_checked": len(levels),
            "accounts_ok": ok,
            "accounts_mismatch": len(levels) - ok,
            "open_discrepancies": sum(1 for d in open_items if d["status"] == "OPEN"),
            "critical_discrepancies": sum(1 for d in open_items if d["severity"] == "CRITICAL"),
            "health_percentage": round(100 * ok / len(levels), 2) if levels else 100.0,
            "timestamp": datetime.now(UTC).isoformat(),
        }

    def health(self) -> tuple[str, dict[str, Any]]:
        with self.view.lock:
            breakers = self.state.breakers
            halted = sorted(s for s, b in breakers.items() if b["state"] == breaker.State.OPEN)
            suspended = sorted(
                s for s, b in breakers.items() if b["state"] == breaker.State.SUSPENDED
            )
            levels = {a: r["level"] for a, r in self.state.latest.items()}
        if halted:
            status = "CRITICAL"
        elif suspended or any(level != "OK" for level in levels.values()):
            status = "WARNING"
        else:
            status = "HEALTHY"
        body = {
            "status": status,
            "breakers_open": halted,
            "payouts_suspended": suspended,
            "levels": levels,
        }
        return status, body

    async def refresh_gauges(self) -> None:
        """Only after a discrepancy or breaker change: one gauge per bank account is not free."""
        with self.view.lock:
            if self.state.alarm_version == self.gauges_version:
                return
            self.gauges_version = self.state.alarm_version
            open_items = [d for d in self.state.discrepancies.values() if d["status"] != "RESOLVED"]
            states = {scope: b["state"] for scope, b in self.state.breakers.items()}
        by_severity = Counter(d["severity"] for d in open_items)
        for severity in ("LOW", "MEDIUM", "HIGH", "CRITICAL"):
            metrics.reconciliation_discrepancies.labels(severity).set(by_severity[severity])
        for bank_account, asset in self.engine.assets.bank_accounts.items():
            halted = breaker.halted(states, asset.code)
            metrics.circuit_breaker_active.labels(bank_account).set(int(halted))

    # -- the pages -----------------------------------------------------------------------

    def install(self, app) -> None:
        api = self

        @app.page("/api/v1/reconciliation/camt054")
        class Camt054(web.View):
            async def post(self, request: web.Request) -> web.Response:
                return await api.camt054(self, request)

        @app.page("/api/v1/reconciliation/intraday/{account_id}")
        class Intraday(web.View):
            async def post(self, request: web.Request, account_id: str) -> web.Response:
                return await api.intraday(self, account_id)

        @app.page("/api/v1/reconciliation/intradey/{account_id}")
        class Intradey(web.View):
            async def post(self, request: web.Request, account_id: str) -> web.Response:
                return await api.intraday(self, account_id)

        @app.page("/api/v1/reconciliation/eod")
        class EndOfDay(web.View):
            async def post(self, request: web.Request) -> web.Response:
                return await api.end_of_day(self, request)

        @app.page("/api/v1/reconciliation/discrepancies/{discrepancy_id}")
        class DiscrepancyStatus(web.View):
            """Operators move a discrepancy: OPEN / INVESTIGATING / RESOLVED / ESCALATED."""

            async def post(self, request: web.Request, discrepancy_id: str) -> web.Response:
                return await api.discrepancy(self, request, discrepancy_id)

        @app.page("/api/v1/reconciliation/summary")
        class Summary(web.View):
            async def get(self, request: web.Request) -> web.Response:
                return self.json(api.summary())

        @app.page("/api/v1/reconciliation/health")
        class Health(web.View):
            async def get(self, request: web.Request) -> web.Response:
                """Open to monitoring: the status only, unless an overseer key asks."""
                status, body = api.health()
                caller = principal(request)
                if caller is None or caller.role not in (OPERATOR, AUDITOR):
                    body = {"status": status}
                return self.json(body, status=503 if status == "CRITICAL" else 200)
