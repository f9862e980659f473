"""The API key on a WebSocket handshake as a subprotocol (deployments/auth.py), and the console's open files."""

from __future__ import annotations

import base64

import pytest

from deployments.auth import _open, authorized, selected_subprotocol
from deployments.console_files import console_file
from forge.errors import NotFound

KEY = b"s3cret/+=key"  # characters a subprotocol name may not hold: base64url carries them


def handshake(*subprotocols: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {"type": "websocket", "headers": headers or [], "subprotocols": list(subprotocols)}


def offered(key: bytes) -> str:
    return "forge-key." + base64.urlsafe_b64encode(key).decode().rstrip("=")


def test_the_key_as_a_subprotocol_opens_a_websocket():
    assert authorized(handshake("forge", offered(KEY)), KEY)
    assert authorized(handshake(offered(KEY)), KEY)
    for wrong in (offered(b"nope"), offered(KEY[:-1]), "forge-key.!!!", "forge-key.", "forge"):
        assert not authorized(handshake("forge", wrong), KEY)


def test_a_subprotocol_does_not_open_plain_http():
    assert not authorized({"type": "http", "headers": [], "subprotocols": [offered(KEY)]}, KEY)
    assert authorized({"type": "http", "headers": [(b"authorization", b"Bearer " + KEY)]}, KEY)


def test_the_server_selects_forge_never_the_key():
    assert selected_subprotocol(handshake("forge", offered(KEY))) == "forge"
    assert selected_subprotocol(handshake(offered(KEY))) is None
    assert selected_subprotocol(handshake()) is None


def test_only_the_console_files_are_open():
    assert _open("/") and _open("/console/app.js") and _open("/api/health")
    assert not any(_open(p) for p in ("/api/models", "/docs", "/openapi.json", "/consolex", "/ws/training"))


def test_console_files_stay_inside_the_console():
    assert console_file("index.html").name == "index.html"
    assert console_file("vendor/uplot/uPlot.esm.js").is_file()
    for escape in ("../api.py", "../../pyproject.toml", "/etc/passwd", "pages", "missing.js"):
        with pytest.raises(NotFound):
            console_file(escape)
