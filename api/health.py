"""The worker's own state: `GET /api/v1/health` (ready or starting), `GET /api/v1/stats`,
`GET /metrics` (Prometheus)."""

from __future__ import annotations

from faust import web

from streams import metrics
from streams.app import Engine
from streams.intake_process import Intake


def install(engine: Engine, intake: Intake) -> None:
    app = engine.app

    def ready() -> bool:
        assigned = app.consumer.assignment() if app.consumer else set()
        return intake.ready and not app.rebalancing and (bool(assigned) or not app.agents)

    @app.page("/api/v1/health")
    class Health(web.View):
        async def get(self, request: web.Request) -> web.Response:
            is_ready = ready()
            body = {"status": "ready" if is_ready else "starting"}
            return self.json(body, status=200 if is_ready else 503)

    @app.page("/api/v1/stats")
    class Stats(web.View):
        async def get(self, request: web.Request) -> web.Response:
            return self.json(
                {
                    "events_processed": metrics.counter_total(metrics.events_processed),
                    "dead_letters": metrics.counter_total(metrics.dead_letters),
                }
            )

    @app.page("/metrics")
    class Metrics(web.View):
        async def get(self, request: web.Request) -> web.Response:
            body, content_type = metrics.render()
            return self.bytes(body, content_type=content_type.split(";")[0])
