"""Turn every failure into the contract's error shape: {"error", "detail", "status_code"}.

Under /v1 the same failures answer in OpenAI's shape instead (deployments/openai_errors.py).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.exceptions import RayActorError, RayTaskError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from deployments.openai_errors import is_openai_path, openai_error_response
from forge.errors import ForgeError, ServiceUnavailable
from forge.schemas import error_body

log = logging.getLogger(__name__)


def unwrap(error: BaseException) -> BaseException:
    """The original exception behind a RayTaskError raised by another actor or replica."""
    while isinstance(error, RayTaskError) and getattr(error, "cause", None) is not None:
        error = error.cause
    return error


def forge_response(error: ForgeError, request: Request | None = None) -> JSONResponse:
    if request is not None and is_openai_path(request.scope):
        return openai_error_response(error.status_code, error.detail, param=error.extra.get("param"),
                                     code=error.extra.get("code"))
    return JSONResponse(status_code=error.status_code, content=error.to_body())


def _validation_detail(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    items = []
    for item in errors:
        location = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        items.append({"field": location or "body", "message": item.get("msg", "invalid"), "type": item.get("type")})
    detail = "; ".join(f"{i['field']}: {i['message']}" for i in items) or "invalid request"
    return detail, items


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route fully matches for this path (asked of the routes themselves)."""
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                   for route in request.app.routes)]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, items = _validation_detail(list(exc.errors()))
        if is_openai_path(request.scope):
            param = items[0]["field"] if items and items[0]["field"] != "body" else None
            return openai_error_response(400, detail.replace("Value error, ", ""), param=param)
        return JSONResponse(status_code=400, content={**error_body(400, "Validation error", detail), "errors": items})

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path served by
            # several routes (GET and DELETE /api/models/{id}) allows all of theirs.
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {', '.join(allowed)}"
        if is_openai_path(request.scope):
            return openai_error_response(exc.status_code, detail, headers=headers or None)
        return JSONResponse(
            status_code=exc.status_code,
            content=error_body(exc.status_code, titles.get(exc.status_code, "HTTP error"), detail),
            headers=headers or None,
        )

    @app.exception_handler(ForgeError)
    async def on_forge_error(request: Request, exc: ForgeError) -> JSONResponse:
        return await on_any_error(request, exc)

    @app.exception_handler(RayActorError)
    async def on_actor_error(request: Request, exc: RayActorError) -> JSONResponse:
        return await on_any_error(request, exc)

    # Exception: the last resort, a 500 without internals.
    @app.exception_handler(Exception)
    async def on_any_error(request: Request, exc: Exception) -> JSONResponse:
        cause = unwrap(exc)
        if isinstance(cause, ForgeError):
            return forge_response(cause, request)
        if isinstance(cause, RayActorError):
            return forge_response(ServiceUnavailable("the training manager is restarting; retry in a few seconds"),
                                  request)
        log.error("unhandled error on %s %s: %r", request.method, request.url.path, cause)
        if is_openai_path(request.scope):
            return openai_error_response(500, "unexpected error; see server logs")
        body = error_body(500, "Internal server error", "unexpected error; see server logs")
        return JSONResponse(status_code=500, content=body)
