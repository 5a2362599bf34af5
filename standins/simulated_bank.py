"""A simulated bank balance API for tests and the demo (stands in for a real bank's API).

Serves `GET /accounts/{account_id}/balance` in the shape `connectors.intraday` reads, and
`PUT /accounts/{account_id}/balance` with `{"balance": "<decimal>"}` to set it. Balances
are exact decimal strings. Runs in a thread on a free loopback port.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SimulatedBank:
    def __init__(self, currency_by_account: dict[str, str] | None = None) -> None:
        self.balances: dict[str, Decimal] = {}
        self.currencies = dict(currency_by_account or {})
        bank = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _account(self) -> str | None:
                parts = self.path.strip("/").split("/")
                if len(parts) == 3 and parts[0] == "accounts" and parts[2] == "balance":
                    return parts[1]
                return None

            def do_GET(self) -> None:
                account = self._account()
                if account is None:
                    self.send_error(404)
                    return
                body = {
                    "account_id": account,
                    "currency": bank.currencies.get(account, ""),
                    "balance": str(bank.balances.get(account, Decimal(0))),
                    "as_of": datetime.now(UTC).isoformat(),
                }
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                account = self._account()
                length = int(self.headers.get("Content-Length", "0"))
                if account is None:
                    self.send_error(404)
                    return
                bank.balances[account] = Decimal(json.loads(self.rfile.read(length))["balance"])
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SimulatedBank:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
