"""The verification endpoint: GET shows a confirmation page, POST verifies.

A small stdlib HTTP server in a thread on ``verification.listen``; pages are
Jinja2 templates with autoescaping. Unknown, used and expired links each get
a clear page; nothing is verified by a GET.
"""

from __future__ import annotations

import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape

from intake.service import Replies
from intake.verification import Verification

if TYPE_CHECKING:
    from intake.runtime import Runtime

log = logging.getLogger(__name__)

TOKEN_PATH = re.compile(r"^/verify/([A-Za-z0-9_-]{20,100})/?$")
PAGES = Environment(loader=PackageLoader("intake", "pages"), autoescape=select_autoescape(["html"]))

STATUS_FOR = {
    "pending": HTTPStatus.OK,
    "needs-confirmation": HTTPStatus.OK,
    "verified": HTTPStatus.OK,
    "used": HTTPStatus.GONE,
    "superseded": HTTPStatus.GONE,
    "expired": HTTPStatus.GONE,
    "unknown": HTTPStatus.NOT_FOUND,
}


def make_handler(runtime: Runtime) -> type[BaseHTTPRequestHandler]:
    verification = Verification(runtime.config, Replies(runtime.config))

    class Handler(BaseHTTPRequestHandler):
        server_version = "pasts"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            # Never log the token: only the page outcome is logged (below).
            pass

        def page(self, state: str, **ctx: Any) -> None:
            body = PAGES.get_template("verify.html").render(state=state, **ctx).encode()
            self.send_response(STATUS_FOR.get(state, HTTPStatus.OK))
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Frame-Options", "DENY")
            self.end_headers()
            self.wfile.write(body)

        def token(self) -> str | None:
            m = TOKEN_PATH.match(self.path.split("?", 1)[0])
            return m.group(1) if m else None

        def do_GET(self) -> None:  # noqa: N802
            token = self.token()
            if token is None:
                self.page("unknown")
                return
            with runtime.store.session() as s:
                state = verification.lookup(s, token)
                if state.state == "expired" and state.token is not None:
                    verification.expire(s, state.token)
                other = bool(state.token and state.token.other_person)
                email = state.token.email if state.token else None
            log.info("verification page %s for %s", state.state, state.reference)
            self.page(state.state, reference=state.reference, email=email, other_person=other)

        def do_POST(self) -> None:  # noqa: N802
            token = self.token()
            if token is None:
                self.page("unknown")
                return
            length = min(int(self.headers.get("Content-Length") or 0), 4096)
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            confirmed = form.get("confirm_other_person", [""])[0] == "yes"
            with runtime.store.session() as s:
                state = verification.confirm(s, token, confirmed_other_person=confirmed)
                email = state.token.email if state.token else None
                other = bool(state.token and state.token.other_person)
            log.info("verification %s for %s", state.state, state.reference)
            self.page(state.state, reference=state.reference, email=email, other_person=other)

    return Handler


class WebServer:
    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread):
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_web(runtime: Runtime) -> WebServer:
    host, _, port = runtime.config.verification.listen.rpartition(":")
    server = ThreadingHTTPServer((host.strip("[]"), int(port)), make_handler(runtime))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="web", daemon=True)
    thread.start()
    return WebServer(server, thread)
