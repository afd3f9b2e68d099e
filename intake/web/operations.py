"""The operator's routes on the web listener (SPEC section 9).

``GET /healthz`` (200 while the process runs), ``GET /readyz``
(:mod:`intake.web.health`: 200 or 503, a JSON body naming each check),
``GET /metrics`` (:mod:`intake.web.metrics`, the Prometheus text format) and the
CRL at the path of ``ca.crl_url``, read from the file ``ca.crl`` and served
as DER (``application/pkix-crl``, RFC 5280 section 4.2.1.13). They share the
listener's bounds, error pages and security headers (:mod:`intake.web.server`);
the database work runs on the listener's thread pool, never on its event
loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from intake.web import health, metrics
from intake.web.health import Watched
from intake.web.pages import error_page

log = logging.getLogger(__name__)

T = TypeVar("T")

CRL_CONTENT_TYPE = "application/pkix-crl"
#: /readyz answers within this many seconds, ready or not (below the listener's bound).
READY_SECONDS = 10.0


def crl_path(runtime: Watched) -> str | None:
    """The path part of ``ca.crl_url`` when the CRL is configured, else None."""
    ca = runtime.config.ca
    if not ca.crl_url or ca.crl is None:
        return None
    path = urlsplit(ca.crl_url).path
    return path if path.startswith("/") else None


def json_response(body: dict[str, Any], status: int) -> web.Response:
    return web.Response(text=json.dumps(body, indent=1, sort_keys=False) + "\n",
                        status=status, content_type="application/json")


class OperationsPages:
    def __init__(self, runtime: Watched, pool: ThreadPoolExecutor):
        self.runtime = runtime
        self.pool = pool
        self.registry = metrics.registry_for(runtime)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        path = crl_path(self.runtime)
        if path is not None:
            app.router.add_get(path, self.crl)

    async def _in_pool(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    async def healthz(self, _request: web.Request) -> web.Response:
        return json_response({"status": "ok"}, HTTPStatus.OK)

    async def readyz(self, _request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(READY_SECONDS):
                ok, body = await self._in_pool(lambda: health.readiness(self.runtime))
        except TimeoutError:
            # A database that hangs (rather than refuses) still gets a JSON answer.
            reason = f"the checks did not answer within {READY_SECONDS:.0f} s"
            ok, body = False, {"ready": False, "failing": list(health.CHECKS),
                               "checks": {name: {"ok": False, "reason": reason}
                                          for name in health.CHECKS}}
        if not ok:
            log.info("readyz: not ready (%s)", ", ".join(body["failing"]))
        return json_response(body, HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE)

    async def metrics(self, _request: web.Request) -> web.Response:
        body = await self._in_pool(lambda: metrics.render(self.registry))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def crl(self, _request: web.Request) -> web.Response:
        path = self.runtime.config.ca.crl
        assert path is not None
        try:
            state = await self._in_pool(lambda: health.read_crl(path))
        except (OSError, ValueError) as exc:
            log.error("CRL %s cannot be served: %s", path, exc)
            return error_page(HTTPStatus.SERVICE_UNAVAILABLE)
        return web.Response(body=state.der, headers={"Content-Type": CRL_CONTENT_TYPE})
