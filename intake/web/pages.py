"""The pages the listener answers with: Jinja2 templates in ``pages/`` (autoescaped), the status of
each link state, and the error page of each status.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

PAGES = Environment(loader=PackageLoader("intake.web.server", "pages"), autoescape=select_autoescape(["html"]))

STATUS_FOR = {
    "pending": HTTPStatus.OK,
    "needs-confirmation": HTTPStatus.OK,
    "verified": HTTPStatus.OK,
    "used": HTTPStatus.GONE,
    "superseded": HTTPStatus.GONE,
    "expired": HTTPStatus.GONE,
    "unknown": HTTPStatus.NOT_FOUND,
}

#: What an error page says, by status.
ERRORS = {
    HTTPStatus.BAD_REQUEST: "The request was not understood.",
    HTTPStatus.NOT_FOUND: "There is no page at this address.",
    HTTPStatus.METHOD_NOT_ALLOWED: "This page cannot be used that way.",
    HTTPStatus.REQUEST_TIMEOUT: "The request took too long to arrive.",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "The request is too large.",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "The request headers are too large.",
    HTTPStatus.TOO_MANY_REQUESTS: "Too many unknown links were tried from your address. "
                                  "Please wait a minute and try again.",
    HTTPStatus.SERVICE_UNAVAILABLE: "The service is busy. Please try again in a moment.",
}


def page(state: str, status: int | None = None, **ctx: Any) -> web.Response:
    """A rendered page with its status."""
    body = PAGES.get_template("verify.html").render(state=state, **ctx)
    code = status if status is not None else STATUS_FOR.get(state, HTTPStatus.OK)
    return web.Response(text=body, status=int(code), content_type="text/html", charset="utf-8")


def error_page(status: int) -> web.Response:
    http = HTTPStatus(status)
    message = ERRORS.get(http, http.description or http.phrase)
    return page("error", status, title=f"{http.value} {http.phrase}", message=message)
