"""The web listener on ``verification.listen``: the verification pages, bounded.

GET ``/verify/TOKEN`` shows a confirmation page, POST verifies; unknown,
used, expired and superseded links each get a clear page, and nothing is
verified by a GET. Pages are Jinja2 templates with autoescaping.

The listener is aiohttp.web, run in its own thread with its own event loop
(the daemon's other parts are threads). It holds what it is sent within
bounds: request line and headers (:data:`MAX_LINE_BYTES`,
:data:`MAX_HEADERS`), body (:data:`MAX_BODY_BYTES`), time (a connection
that has not sent a whole request within :data:`IDLE_SECONDS` is closed,
whether it is idle or half-open; a body must arrive within
:data:`BODY_SECONDS`), and token guessing (:data:`GUESSES_PER_MINUTE`
unknown links per client address, then 429). A malformed request gets 400.
Every response, error pages included, carries :data:`SECURITY_HEADERS` and
no ``Server`` version.

The handlers are thin: the link logic lives in :class:`intake.app.links.Verification`,
run on a small thread pool so the database never blocks the event loop.
More routes (health, readiness, metrics, the CRL) are added by another
``add_routes`` beside :meth:`VerificationPages.add_routes` in :func:`build_app`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import parse_qs

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from intake.app.links import LinkState, Verification
from intake.app.replies import Replies
from intake.display import safe
from intake.web.health import Watched
from intake.web.operations import OperationsPages
from intake.web.pages import error_page, page

log = logging.getLogger(__name__)

#: Headers on every response. The token is in the URL: no referrer leaves the
#: page, and no page is cached or framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    # The product name only, never a version.
    "Server": "pasts",
}

#: A request body larger than this is refused with 413 (the form is a few bytes).
MAX_BODY_BYTES = 16 * 1024
#: Longest request line or header line, and most header lines, before 400.
MAX_LINE_BYTES = 8190
MAX_HEADERS = 64
#: A connection that has not sent a complete request (headers) within this
#: many seconds, fresh or kept alive, is closed (slowloris).
IDLE_SECONDS = 5.0
#: A request body must arrive within this many seconds (408 otherwise).
BODY_SECONDS = 5.0
#: A page must be answered within this many seconds (503 otherwise).
ANSWER_SECONDS = 20.0
#: Unknown links one client address may try in a minute; then 429.
GUESSES_PER_MINUTE = 10
#: Client addresses the guess counter remembers (the oldest is forgotten).
TRACKED_CLIENTS = 10_000


def add_security_headers(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value


class GuessThrottle:
    """Counts unknown-link hits per client address in a sliding minute.

    The table is bounded (:data:`TRACKED_CLIENTS`), so a flood from many
    addresses cannot grow it without end; it is used from the event loop
    thread only.
    """

    def __init__(self, per_minute: int = GUESSES_PER_MINUTE, clients: int = TRACKED_CLIENTS,
                 clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.clients = clients
        self.clock = clock
        self.hits: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str) -> deque[float]:
        now = self.clock()
        hits = self.hits.get(client)
        if hits is None:
            return deque()
        while hits and hits[0] <= now - 60.0:
            hits.popleft()
        return hits

    def blocked(self, client: str) -> bool:
        return len(self._recent(client)) >= self.per_minute

    def miss(self, client: str) -> None:
        hits = self._recent(client)
        hits.append(self.clock())
        self.hits[client] = hits
        self.hits.move_to_end(client)
        while len(self.hits) > self.clients:
            self.hits.popitem(last=False)


class VerificationPages:
    """The ``/verify/TOKEN`` routes; the link logic is the service layer's."""

    def __init__(self, runtime: Watched, pool: ThreadPoolExecutor, throttle: GuessThrottle):
        self.runtime = runtime
        self.pool = pool
        self.throttle = throttle
        self.verification = Verification(runtime.config, Replies(runtime.config))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(r"/verify/{token:[A-Za-z0-9_-]{20,100}}", self.get)
        app.router.add_post(r"/verify/{token:[A-Za-z0-9_-]{20,100}}", self.post)
        app.router.add_get(r"/verify/{token:[A-Za-z0-9_-]{20,100}}/", self.get)
        app.router.add_post(r"/verify/{token:[A-Za-z0-9_-]{20,100}}/", self.post)
        # A path that cannot be a link still answers with the unknown-link page
        # and counts as a guess.
        app.router.add_route("GET", "/verify/{rest:.*}", self.unknown)
        app.router.add_route("POST", "/verify/{rest:.*}", self.unknown)

    async def _in_pool(self, fn: Callable[[], LinkState]) -> LinkState:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, fn)

    def _answer(self, request: web.Request, state: LinkState, what: str) -> web.Response:
        if state.state == "unknown":
            self.throttle.miss(request.remote or "?")
        log.info("%s %s for %s", what, state.state, safe(state.reference))
        email = state.token.email if state.token else None
        other = bool(state.token and state.token.other_person)
        purpose = state.token.purpose if state.token else "verify"
        return page(state.state, reference=state.reference, email=email, other_person=other,
                    purpose=purpose)

    async def unknown(self, request: web.Request) -> web.Response:
        if self.throttle.blocked(request.remote or "?"):
            return error_page(HTTPStatus.TOO_MANY_REQUESTS)
        self.throttle.miss(request.remote or "?")
        return page("unknown")

    async def get(self, request: web.Request) -> web.Response:
        if self.throttle.blocked(request.remote or "?"):
            return error_page(HTTPStatus.TOO_MANY_REQUESTS)
        token = request.match_info["token"]

        def look() -> LinkState:
            with self.runtime.store.session() as s:
                state = self.verification.lookup(s, token)
                if state.state == "expired" and state.token is not None:
                    self.verification.expire(s, state.token)
                return state

        return self._answer(request, await self._in_pool(look), "verification page")

    async def post(self, request: web.Request) -> web.Response:
        if self.throttle.blocked(request.remote or "?"):
            return error_page(HTTPStatus.TOO_MANY_REQUESTS)
        token = request.match_info["token"]
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            return error_page(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            # read() stops at client_max_size (413) whatever the framing.
            async with asyncio.timeout(BODY_SECONDS):
                body = await request.read()
        except TimeoutError:
            return error_page(HTTPStatus.REQUEST_TIMEOUT)
        try:
            form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
        except ValueError:
            return error_page(HTTPStatus.BAD_REQUEST)
        confirmed = form.get("confirm_other_person", [""])[0] == "yes"

        def confirm() -> LinkState:
            with self.runtime.store.session() as s:
                return self.verification.confirm(s, token, confirmed_other_person=confirmed)

        return self._answer(request, await self._in_pool(confirm), "verification")


@web.middleware
async def bounded(request: web.Request,
                  handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    """Answer within :data:`ANSWER_SECONDS`, and every HTTP error with a page."""
    try:
        async with asyncio.timeout(ANSWER_SECONDS):
            return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_page(exc.status)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except TimeoutError:
        log.error("web: %s %s not answered within %.0f s", request.method,
                  request.path[:40], ANSWER_SECONDS)
        return error_page(HTTPStatus.SERVICE_UNAVAILABLE)


async def _on_prepare(_request: web.Request, response: web.StreamResponse) -> None:
    add_security_headers(response)


class _Protocol(RequestHandler):
    """aiohttp's connection handler, with our error pages for malformed requests.

    aiohttp answers a request it cannot parse (``Content-Length: x``, a bad
    request line, headers over the bounds) itself, before routing, so the
    application's response hook never sees it; it also logs a traceback for
    what is only a hostile or broken client.
    """

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            # A fault of ours: the traceback is worth having.
            log.error("web: error answering %s", safe(request.remote), exc_info=exc)
        else:
            log.info("web: malformed request from %s answered %d: %s", safe(request.remote),
                     status, safe(str(exc or message or "")[:200]))
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        response = error_page(status)
        add_security_headers(response)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return _Server(base.request_handler, request_factory=base.request_factory,
                       loop=asyncio.get_running_loop(), **base._kwargs)


def build_app(runtime: Watched, pool: ThreadPoolExecutor) -> web.Application:
    """The application with every route the listener serves."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[bounded])
    app.on_response_prepare.append(_on_prepare)
    VerificationPages(runtime, pool, GuessThrottle()).add_routes(app)
    OperationsPages(runtime, pool).add_routes(app)
    return app


class WebServer:
    """The listener's thread and event loop; :meth:`shutdown` stops both."""

    def __init__(self, runtime: Watched):
        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="web-db")
        self.runner: _Runner | None = None
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="web", daemon=True)

    def start(self) -> WebServer:
        self.thread.start()
        self._ready.wait()
        if self._error is not None:
            self.thread.join()
            self.pool.shutdown(wait=False)
            raise self._error
        return self

    async def _start(self) -> None:
        host, _, port = self.runtime.config.verification.listen.rpartition(":")
        self.runner = _Runner(
            build_app(self.runtime, self.pool), access_log=None,
            keepalive_timeout=IDLE_SECONDS, lingering_time=1.0,
            max_line_size=MAX_LINE_BYTES, max_field_size=MAX_LINE_BYTES,
            max_headers=MAX_HEADERS, shutdown_timeout=2.0,
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, host.strip("[]"), int(port), backlog=128)
        await site.start()
        # The bound port (``listen`` may name port 0 in tests).
        self.port = int(self.runner.addresses[0][1])

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def shutdown(self) -> None:
        if self.runner is not None and self.loop.is_running():
            done = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
            try:
                done.result(timeout=10)
            except Exception:  # stopping anyway
                log.exception("web: clean shutdown failed")
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.pool.shutdown(wait=False, cancel_futures=True)


def start_web(runtime: Watched) -> WebServer:
    """Start the listener on ``verification.listen``; return once it accepts."""
    return WebServer(runtime).start()
