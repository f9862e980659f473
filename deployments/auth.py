"""Bearer-token authentication for every route but /api/health, REST and WebSocket alike.

With FORGE_API_KEY set, a request without `Authorization: Bearer <key>` gets a 401
in the contract's error shape (under /v1 in OpenAI's, which its SDKs read) (a WebSocket is refused before it is accepted).
The comparison is constant-time, and the key is never logged or echoed.

Serve pickles the FastAPI app when the ingress class is decorated, so the app
cannot hold the key itself: each ingress replica calls `configure` in its
constructor, and the middleware (found by reference in this module) reads it.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Awaitable, Callable, Optional

from pydantic import SecretStr

from deployments.openai_errors import app_path, is_openai_path, openai_error_body
from forge.schemas import error_body

OPEN_PATHS = frozenset({"/api/health"})
_key: Optional[bytes] = None

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def configure(api_key: Optional[SecretStr]) -> None:
    """Set this process's key (None turns authentication off)."""
    global _key
    _key = api_key.get_secret_value().encode() if api_key is not None else None


def authorized(headers: list[tuple[bytes, bytes]], key: bytes) -> bool:
    offered = b""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                offered = token.strip()
    # compare_digest takes as long for a near miss as for a wild guess.
    return hmac.compare_digest(offered, key)


class ApiKeyMiddleware:
    """Pure ASGI middleware, so it sees WebSocket handshakes as well as HTTP requests."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _key
        if key is None or scope["type"] not in ("http", "websocket") or app_path(scope) in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if authorized(scope.get("headers", []), key):
            return await self.app(scope, receive, send)
        if scope["type"] == "http":
            return await _send_401(send, "http.response", scope)
        if "websocket.http.response" in scope.get("extensions", {}):
            return await _send_401(send, "websocket.http.response", scope)
        # The server cannot send a response to the handshake: refusing it is all we can do.
        await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong bearer token"})


async def _send_401(send: Send, prefix: str, scope: Scope) -> None:
    message = "this service needs an API key: send 'Authorization: Bearer <FORGE_API_KEY>'"
    # Under /v1 in OpenAI's shape, so its SDKs raise AuthenticationError with the message.
    shaped = openai_error_body(401, message) if is_openai_path(scope) else error_body(401, "Unauthorized", message)
    body = json.dumps(shaped).encode()
    await send({"type": f"{prefix}.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer"),
    ]})
    await send({"type": f"{prefix}.body", "body": body})
