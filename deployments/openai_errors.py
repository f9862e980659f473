"""Errors on the /v1 routes in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.

The OpenAI SDKs pick their exception class from the status (400 BadRequestError,
401 AuthenticationError, 404 NotFoundError, 409 ConflictError, ...) and show the
message; `param` names the request field at fault. The error handlers
(deployments/errors.py) and the API-key middleware answer a /v1 path this way,
every other path in the REST contract's shape.
"""

from __future__ import annotations

from typing import Any, Optional

from fastapi.responses import JSONResponse

from forge.openai_schemas import OpenAIErrorDetail, OpenAIErrorResponse

OPENAI_PREFIX = "/v1"
# OpenAI's own `type` per status; anything else of 4xx is an invalid request, of 5xx a server error.
_TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "rate_limit_error"}
_CODES = {401: "invalid_api_key", 404: "not_found"}
# What /v1 routes document for their error statuses (OpenAPI).
OPENAI_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIErrorResponse} for code in (400, 401, 404, 409, 413, 500, 503)}


def app_path(scope: dict[str, Any]) -> str:
    """The request's path within the app (without the route prefix a Serve app is mounted under)."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def is_openai_path(scope: dict[str, Any]) -> bool:
    path = app_path(scope)
    return path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + "/")


def openai_error_body(status_code: int, message: str, *, param: Optional[str] = None,
                      code: Optional[str] = None) -> dict[str, Any]:
    kind = _TYPES.get(status_code, "server_error" if status_code >= 500 else "invalid_request_error")
    detail = OpenAIErrorDetail(message=message, type=kind, param=param, code=code or _CODES.get(status_code))
    return OpenAIErrorResponse(error=detail).model_dump()


def openai_error_response(status_code: int, message: str, *, param: Optional[str] = None,
                          code: Optional[str] = None, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    return JSONResponse(status_code=status_code, headers=headers,
                        content=openai_error_body(status_code, message, param=param, code=code))
