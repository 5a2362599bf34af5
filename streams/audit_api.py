"""`GET /api/v1/audit?cursor=&limit=`: the audit trail, read from Postgres by cursor.

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

from streams.app import app, settings
from topics.jsonable import jsonable

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def read_audit(cursor: int, limit: int) -> list[dict[str, Any]]:
    with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT position, event_id, topic, account_id, operation, changes, occurred_at"
            " FROM audit_log WHERE position > %s ORDER BY position LIMIT %s",
            (cursor, limit),
        ).fetchall()
    names = ("position", "event_id", "topic", "account_id", "operation", "changes", "occurred_at")
    return [dict(zip(names, row, strict=True)) for row in rows]


@app.page("/api/v1/audit")
class Audit(web.View):
    async def get(self, request: web.Request) -> web.Response:
        try:
            cursor = int(request.query.get("cursor") or 0)
            limit = int(request.query.get("limit") or DEFAULT_LIMIT)
        except ValueError:
            message = "cursor and limit must be integers"
            return self.json({"error": "invalid_field", "message": message}, status=400)
        if cursor < 0 or not 1 <= limit <= MAX_LIMIT:
            message = f"cursor >= 0 and 1 <= limit <= {MAX_LIMIT}"
            return self.json({"error": "invalid_field", "message": message}, status=400)
        if not settings.database_url:
            message = "no database configured (TOKENGINE_DATABASE_URL)"
            return self.json({"error": "unavailable", "message": message}, status=503)
        try:
            entries = await asyncio.get_running_loop().run_in_executor(
                None, read_audit, cursor, limit
            )
        except psycopg.Error as error:
            return self.json({"error": "unavailable", "message": str(error)}, status=503)
        next_cursor = entries[-1]["position"] if entries else cursor
        return self.json(jsonable({"entries": entries, "next_cursor": next_cursor}))
