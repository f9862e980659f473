"""Bearer-token authentication for every route but /api/health, REST and WebSocket alike.

With FORGE_API_KEY set, a request without `Authorization: Bearer <key>` gets a 401
in the contract's error shape (under /v1 in OpenAI's, which its SDKs read) (a WebSocket is refused before it is accepted).
The comparison is constant-time, and the key is never logged or echoed.

A browser cannot set headers on a WebSocket handshake, and a key in the URL would land
in logs and history; so a WebSocket may instead offer the key as a subprotocol,
`forge-key.<the key, base64url without padding>` (base64url's alphabet is allowed in a
subprotocol name, a key's characters may not be), beside `forge`, the subprotocol the
server selects: the key itself is never echoed back.
The console's static files (/, /console/...) hold no data and load without a key: the
page asks for the key and sends it with its own requests.

Serve pickles the FastAPI app when the ingress class is decorated, so the app
cannot hold the key itself: each ingress replica calls `configure` in its
constructor, and the middleware (found by reference in this module) reads it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any, Awaitable, Callable, Optional

from pydantic import SecretStr

from deployments.openai_errors import app_path, is_openai_path, openai_error_body
from forge.schemas import error_body

OPEN_PATHS = frozenset({"/api/health", "/"})
OPEN_PREFIXES = ("/console/",)
KEY_SUBPROTOCOL_PREFIX = "forge-key."
FEED_SUBPROTOCOL = "forge"
_key: Optional[bytes] = None

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def configure(api_key: Optional[SecretStr]) -> None:
    """Set this process's key (None turns authentication off)."""
    global _key
    _key = api_key.get_secret_value().encode() if api_key is not None else None


def _subprotocol_key(scope: Scope) -> bytes:
    """The key a WebSocket handshake offers as a `forge-key.` subprotocol (b"" when none)."""
    for protocol in scope.get("subprotocols", []) if scope["type"] == "websocket" else []:
        if protocol.startswith(KEY_SUBPROTOCOL_PREFIX):
            encoded = protocol[len(KEY_SUBPROTOCOL_PREFIX):]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError):
                return b""
    return b""


def authorized(scope: Scope, key: bytes) -> bool:
    offered = b""
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                offered = token.strip()
    offered = offered or _subprotocol_key(scope)
    # compare_digest takes as long for a near miss as for a wild guess.
    return hmac.compare_digest(offered, key)


def selected_subprotocol(scope: Scope) -> Optional[str]:
    """The subprotocol a WebSocket accepts with: `forge` when offered (a browser fails a handshake that
    offered subprotocols and got none back), else none."""
    return FEED_SUBPROTOCOL if FEED_SUBPROTOCOL in scope.get("subprotocols", []) else None


def _open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class ApiKeyMiddleware:
    """Pure ASGI middleware, so it sees WebSocket handshakes as well as HTTP requests."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _key
        if key is None or scope["type"] not in ("http", "websocket") or _open(app_path(scope)):
            return await self.app(scope, receive, send)
        if authorized(scope, key):
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
