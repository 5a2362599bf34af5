"""The reconciliation operator surface: HTTP endpoints, health, summary and gauges.

`POST /api/v1/reconciliation/camt054` (XML or the JSON entry shape) publishes the
notification and answers with its tier-1 result; `.../intraday/{account_id|all}` (also
spelled `intradey`, as existing clients call it) asks the bank API and answers with the
tier-2 result; `.../eod` takes a camt.053 and answers with the snapshot and findings.
`GET .../summary` and `GET .../health` (503 while a breaker halts payouts) read the
whole-topic reconciliation view, so every worker answers the same.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from faust import web

from connectors.camt import CamtError
from connectors.intraday import IntradayError
from streams import metrics
from streams.app import app, assets, codec, settings
from streams.bank_intake import (
    bank_accounts,
    camt_error,
    connector,
    in_thread,
    publish_intraday_balance,
    submit_body,
)
from streams.reconciliation import state, state_view
from tokengine.fields import FieldError, load_json
from topics import catalogue
from topics.jsonable import jsonable

RESULT_WAIT_S = 20.0
DISCREPANCY_STATUSES = ("OPEN", "INVESTIGATING", "RESOLVED", "ESCALATED")


async def wait_for_result(check_id: str) -> dict[str, Any] | None:
    deadline = time.monotonic() + RESULT_WAIT_S
    while time.monotonic() < deadline:
        with state_view.lock:
            result = state.results.get(check_id)
        if result is not None:
            return result
        await asyncio.sleep(0.005)
    return None


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


async def answer(view: web.View, check_ids: list[str], extra=None) -> web.Response:
    results = []
    for check_id in check_ids:
        result = await wait_for_result(check_id)
        if result is None:
            return view.json(
                {"error": "timeout", "message": f"no result for {check_id} yet"}, status=504
            )
        body = result_body(result)
        if extra is not None:
            body.update(await extra(result))
        results.append(body)
    if len(results) == 1:
        return view.json(results[0])
    return view.json({"results": results})


@app.page("/api/v1/reconciliation/camt054")
class Camt054(web.View):
    async def post(self, request: web.Request) -> web.Response:
        try:
            submission = await submit_body(request, "api:/api/v1/reconciliation/camt054")
        except CamtError as error:
            return camt_error(self, error)
        if submission.kind == "camt.053":
            message = "a camt.053 statement: POST it to /api/v1/reconciliation/eod"
            return self.json({"error": "wrong_message", "message": message}, status=400)
        check_ids = [f"tier1:{e['account_id']}:{e['message_id']}" for e in submission.events]
        duplicates = set(submission.duplicates)

        async def duplicate(result: dict[str, Any]) -> dict[str, Any]:
            return {"duplicate": result["check_id"].split(":", 2)[2] in duplicates}

        return await answer(self, check_ids, duplicate)


async def intraday(view: web.View, account_id: str) -> web.Response:
    accounts = bank_accounts() if account_id == "all" else [account_id]
    if account_id != "all" and assets().by_bank_account(account_id) is None:
        return view.json(
            {"error": "unknown_bank_account", "message": f"no asset is backed by {account_id}"},
            status=404,
        )
    check_ids = []
    for account in accounts:
        try:
            balance = await in_thread(publish_intraday_balance, account)
        except IntradayError as error:
            return view.json({"error": "bank_api_unavailable", "message": str(error)}, status=503)
        as_of_ms = int(balance["as_of"].timestamp() * 1000)
        check_ids.append(f"tier2:{account}:{as_of_ms}")

    async def drift(result: dict[str, Any]) -> dict[str, Any]:
        return {"drift_pct_per_check": str(state.drift(result["account_id"]))}

    return await answer(view, check_ids, drift)


@app.page("/api/v1/reconciliation/intraday/{account_id}")
class Intraday(web.View):
    async def post(self, request: web.Request, account_id: str) -> web.Response:
        return await intraday(self, account_id)


@app.page("/api/v1/reconciliation/intradey/{account_id}")
class Intradey(web.View):
    async def post(self, request: web.Request, account_id: str) -> web.Response:
        return await intraday(self, account_id)


@app.page("/api/v1/reconciliation/eod")
class EndOfDay(web.View):
    async def post(self, request: web.Request) -> web.Response:
        try:
            submission = await submit_body(request, "api:/api/v1/reconciliation/eod")
        except CamtError as error:
            return camt_error(self, error)
        if submission.kind != "camt.053":
            message = "end of day takes a camt.053 statement"
            return self.json({"error": "wrong_message", "message": message}, status=400)
        check_ids = [
            f"tier3:{e['account_id']}:{e['statement_date']}:{e['message_id']}"
            for e in submission.events
        ]
        return await answer(self, check_ids, eod_details)


async def eod_details(result: dict[str, Any]) -> dict[str, Any]:
    """The check's snapshot and findings: written before its result, maybe read after it."""
    account_id, day = result["account_id"], result["check_id"].split(":")[2]
    message_id = result["check_id"].split(":", 3)[3]
    await in_thread(state_view.wait_caught_up)
    deadline = time.monotonic() + RESULT_WAIT_S
    while time.monotonic() < deadline:
        with state_view.lock:
            snapshot = state.snapshots.get(f"{account_id}:{day}")
        if snapshot is not None and snapshot["statement_message_id"] == message_id:
            break
        await asyncio.sleep(0.005)
    with state_view.lock:
        findings = [
            d
            for d in state.discrepancies.values()
            if d["discrepancy_id"].startswith(result["check_id"] + ":")
        ]
    return jsonable({"snapshot": snapshot, "discrepancies": findings})


@app.page("/api/v1/reconciliation/discrepancies/{discrepancy_id}")
class DiscrepancyStatus(web.View):
    """Operators move a discrepancy through OPEN / INVESTIGATING / RESOLVED / ESCALATED."""

    async def post(self, request: web.Request, discrepancy_id: str) -> web.Response:
        try:
            body = load_json(await request.read())
        except FieldError as error:
            return self.json({"error": error.reason, "message": str(error)}, status=400)
        status = body.get("status") if isinstance(body, dict) else None
        if status not in DISCREPANCY_STATUSES:
            message = f"status: one of {', '.join(DISCREPANCY_STATUSES)}"
            return self.json({"error": "invalid_field", "message": message}, status=400)
        with state_view.lock:
            current = state.discrepancies.get(discrepancy_id)
        if current is None:
            return self.json({"error": "not_found", "message": discrepancy_id}, status=404)
        updated = {**current, "status": status, "detected_at": current["detected_at"]}
        producer = connector.producer
        producer.produce(
            settings.topic_prefix + catalogue.DISCREPANCIES,
            codec.encode(catalogue.DISCREPANCIES, updated),
            current["account_id"].encode(),
        )
        await in_thread(producer.flush, 30)
        return self.json(jsonable(updated))


def halted_scopes() -> list[str]:
    return sorted(s for s, b in state.breakers.items() if b["state"] == "OPEN")


def summary() -> dict[str, Any]:
    accounts = bank_accounts()
    with state_view.lock:
        levels = {a: state.latest[a]["level"] for a in accounts if a in state.latest}
        open_items = [d for d in state.discrepancies.values() if d["status"] != "RESOLVED"]
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


@app.page("/api/v1/reconciliation/summary")
class Summary(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.json(summary())


def health() -> tuple[str, dict[str, Any]]:
    with state_view.lock:
        halted = halted_scopes()
        suspended = sorted(s for s, b in state.breakers.items() if b["state"] == "SUSPENDED")
        levels = {a: r["level"] for a, r in state.latest.items()}
    if halted:
        status = "CRITICAL"
    elif suspended or any(level != "OK" for level in levels.values()):
        status = "WARNING"
    else:
        status = "HEALTHY"
    return status, {
        "status": status,
        "breakers_open": halted,
        "payouts_suspended": suspended,
        "levels": levels,
    }


@app.page("/api/v1/reconciliation/health")
class Health(web.View):
    async def get(self, request: web.Request) -> web.Response:
        status, body = health()
        return self.json(body, status=503 if status == "CRITICAL" else 200)


gauges_version = -1  # the state's alarm_version the gauges show


@app.timer(1.0)
async def refresh_gauges() -> None:
    """Only after a discrepancy or breaker change: one gauge per bank account is not free."""
    global gauges_version
    with state_view.lock:
        if state.alarm_version == gauges_version:
            return
        gauges_version = state.alarm_version
        open_items = [d for d in state.discrepancies.values() if d["status"] != "RESOLVED"]
        breakers = {scope: b["state"] for scope, b in state.breakers.items()}
    by_severity = Counter(d["severity"] for d in open_items)
    for severity in ("LOW", "MEDIUM", "HIGH", "CRITICAL"):
        metrics.reconciliation_discrepancies.labels(severity).set(by_severity[severity])
    for asset in assets().assets.values():
        if asset.bank_account:
            halted = "OPEN" in (breakers.get("global"), breakers.get(f"asset:{asset.code}"))
            metrics.circuit_breaker_active.labels(asset.bank_account).set(int(halted))
