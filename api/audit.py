"""`GET /api/v1/audit?cursor=&limit=`: the audit trail, read from Postgres by cursor.

At most `MAX_CONCURRENT_READS` reads (database connections) at once per worker; a read
that waits longer than `READ_QUEUE_WAIT_S` for its turn answers 503.

The Postgres sink stores every operation once in `audit_log`, in one order (its
`position`). A client passes the last position it has (`cursor`, 0 to start) and gets the
next `limit` entries and the cursor to continue from; replaying the ledger entries in that
order rebuilds the ledger's state at any point.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from faust import web

from api.responses import error
from core.reasons import Reason
from streams.app import Engine
from topics.jsonable import jsonable

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CONCURRENT_READS = 4  # database connections one worker opens for the audit at once
READ_QUEUE_WAIT_S = 5.0  # then 503: the caller tries again


COLUMNS = (
    "position",
    "event_id",
    "topic",
    "account_id",
    "operation",
    "changes",
    "occurred_at",
    "actor",
)


def read_audit(database_url: str, cursor: int, limit: int) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE position > %(cursor)s"
            " ORDER BY position LIMIT %(limit)s",
            {"cursor": cursor, "limit": limit},
        ).fetchall()
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def install(engine: Engine) -> None:
    database_url = engine.settings.database_url
    reads = asyncio.Semaphore(MAX_CONCURRENT_READS)

    @engine.app.page("/api/v1/audit")
    class Audit(web.View):
        async def get(self, request: web.Request) -> web.Response:
            try:
                cursor = int(request.query.get("cursor") or 0)
                limit = int(request.query.get("limit") or DEFAULT_LIMIT)
            except ValueError:
                return error(self, 400, Reason.INVALID_FIELD, "cursor and limit are integers")
            if cursor < 0 or not 1 <= limit <= MAX_LIMIT:
                message = f"cursor >= 0 and 1 <= limit <= {MAX_LIMIT}"
                return error(self, 400, Reason.INVALID_FIELD, message)
            if not database_url:
                message = "no database configured (TOKENGINE_DATABASE_URL)"
                return error(self, 503, Reason.UNAVAILABLE, message)
            try:
                await asyncio.wait_for(reads.acquire(), READ_QUEUE_WAIT_S)
            except TimeoutError:
                return error(self, 503, Reason.UNAVAILABLE, "too many audit reads; try again")
            try:
                entries = await asyncio.get_running_loop().run_in_executor(
                    None, read_audit, database_url, cursor, limit
                )
            except psycopg.Error as problem:
                return error(self, 503, Reason.UNAVAILABLE, str(problem))
            finally:
                reads.release()
            next_cursor = entries[-1]["position"] if entries else cursor
            return self.json(jsonable({"entries": entries, "next_cursor": next_cursor}))
