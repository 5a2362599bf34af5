"""The API's error shape, one for every endpoint: `{"error": <Reason>, "message", "field"?}`."""

from __future__ import annotations

from typing import Any

from faust import web

from core.fields import FieldError


def error_body(reason: str, message: str, field: str | None = None) -> dict[str, Any]:
    body = {"error": reason, "message": message}
    if field:
        body["field"] = field
    return body


def error(view: web.View, status: int, reason: str, message: str, field: str | None = None):
    return view.json(error_body(reason, message, field), status=status)


def refused(view: web.View, problem: FieldError) -> web.Response:
    """400 for input refused by a field rule, naming its field."""
    return error(view, 400, problem.reason, str(problem), problem.field)
