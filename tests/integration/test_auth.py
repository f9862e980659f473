"""FORGE_API_KEY: every route but /api/health needs `Authorization: Bearer <key>`, REST and WebSocket.

A second application of the real ingress, built with an API key, is deployed next
to the session's one under /secured (same manager, same Ray instance).
"""

from __future__ import annotations

import base64
import json
import secrets

import pytest
import requests
from support import NO_PLAYGROUND, SAMPLE_DATASET, Service, assert_error_shape, keyed_app
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from forge.client import ForgeClient

pytestmark = pytest.mark.integration

KEY = "forge-test-" + secrets.token_hex(16)
PREFIX = "/secured"


@pytest.fixture(scope="module")
def secured(service: Service):
    with keyed_app(service, PREFIX.strip("/"), KEY, **NO_PLAYGROUND) as secured:
        yield secured


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


PROTECTED = [
    ("get", "/api/info"), ("get", "/api/datasets"), ("get", "/api/datasets/d.jsonl"),
    ("delete", "/api/datasets/d.jsonl"), ("get", "/api/models"), ("get", "/api/models/1"),
    ("delete", "/api/models/1"), ("patch", "/api/models/1"), ("get", "/api/models/1/download"),
    ("post", "/api/models/1/merge"), ("get", "/api/training_status"),
    ("post", "/api/start_training"),
    ("post", "/api/stop_training"), ("post", "/api/upload_dataset"), ("post", "/api/playground/generate"),
    ("get", "/api/jobs"), ("get", "/api/jobs/train_0"), ("get", "/api/jobs/train_0/events"),
    ("get", "/api/jobs/train_0/metrics"), ("post", "/api/jobs/train_0/resume"), ("delete", "/api/jobs/train_0"),
    ("get", "/api/jobs/train_0/logs"), ("get", "/api/jobs/train_0/checkpoints"),
    ("post", "/api/jobs/train_0/checkpoints/10/register"),
    ("get", "/openapi.json"), ("get", "/docs"), ("get", "/api/no-such-route"),
]


@pytest.mark.parametrize("method,path", PROTECTED)
def test_every_route_but_health_answers_401_without_the_key(secured: Service, method: str, path: str):
    for headers in ({}, _bearer("wrong"), _bearer(KEY[:-1]), {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
        response = requests.request(method, secured.url + path, headers=headers, timeout=30)
        body = assert_error_shape(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        assert KEY not in response.text and "Bearer <FORGE_API_KEY>" in body["detail"]


def test_health_is_open_and_the_key_opens_everything_else(secured: Service):
    assert requests.get(secured.url + "/api/health", timeout=30).status_code == 200
    keyed = ForgeClient(secured.url, api_key=KEY)  # sends `Authorization: Bearer <KEY>` with every request
    assert keyed.get("/api/info").status_code == 200
    uploaded = keyed.send_upload(SAMPLE_DATASET, "secured.jsonl")
    assert uploaded.status_code == 200, uploaded.text
    # The wrong route with the right key is a 404, not a 401: the key was accepted.
    assert_error_shape(keyed.get("/api/nope"), 404)


def test_the_websocket_refuses_a_handshake_without_the_key(secured: Service):
    with pytest.raises(InvalidStatus) as refused:
        with connect(secured.ws_url + "/ws/training", open_timeout=30):
            pass
    # The handshake itself is answered with the 401 and the error shape.
    assert refused.value.response.status_code == 401
    assert json.loads(bytes(refused.value.response.body))["status_code"] == 401
    with pytest.raises(InvalidStatus):
        with connect(secured.ws_url + "/ws/training", open_timeout=30, additional_headers=_bearer("wrong")):
            pass
    with connect(secured.ws_url + "/ws/training", open_timeout=30, additional_headers=_bearer(KEY)) as socket:
        assert "status" in json.loads(socket.recv(timeout=30))


def test_the_key_never_reaches_the_logs(secured: Service):
    requests.get(secured.url + "/api/info", headers=_bearer(KEY), timeout=30)
    requests.get(secured.url + "/api/info", headers=_bearer(KEY + "x"), timeout=30)
    logs = [path for path in (secured.session_dir / "logs").rglob("*") if path.is_file()]
    assert logs
    leaked = [path.name for path in logs if KEY.encode() in path.read_bytes()]
    assert leaked == []


def _key_subprotocol(key: str) -> str:
    """The key as a browser offers it: a `forge-key.` subprotocol, base64url without padding."""
    return "forge-key." + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def test_the_websocket_takes_the_key_as_a_subprotocol(secured: Service):
    url = secured.ws_url + "/ws/training"
    with connect(url, open_timeout=30, subprotocols=["forge", _key_subprotocol(KEY)]) as socket:
        # The server selects `forge`, never the subprotocol that carries the key.
        assert socket.subprotocol == "forge"
        assert "status" in json.loads(socket.recv(timeout=30))
    for offered in (_key_subprotocol("wrong"), _key_subprotocol(KEY[:-1]), "forge-key.!!!!", "forge"):
        with pytest.raises(InvalidStatus) as refused:
            with connect(url, open_timeout=30, subprotocols=["forge", offered]):
                pass
        assert refused.value.response.status_code == 401
        assert KEY not in bytes(refused.value.response.body).decode()


def test_the_console_page_loads_without_the_key(secured: Service):
    page = requests.get(secured.url + "/", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert requests.get(secured.url + "/console/app.js", timeout=30).status_code == 200
    # What the page shows comes from the API, which still needs the key.
    assert_error_shape(requests.get(secured.url + "/api/models", timeout=30), 401)
