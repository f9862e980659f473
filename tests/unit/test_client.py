"""forge.client against a stand-in HTTP server: URLs and queries, the bearer token, `wait`, error bodies.

The stand-in is a small FastAPI app served by uvicorn on a loopback port, answering
a few routes in the contract's shapes; it is here because the real service (Ray,
Serve, the manager) is what the integration tests drive this same client against,
and these checks need answers a real job would not give on cue (a scripted status
sequence, a 409, a proxy's plain-text 502).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse

from forge.client import ForgeClient, ForgeClientError, JobEndedError
from forge.schemas import TrainingRequest

REPO = Path(__file__).resolve().parents[2]


def _error(status_code: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, "status_code": status_code}, status_code=status_code)


class StandIn:
    """The stand-in's app and what it saw: every request, and per job the statuses it answers in turn."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.app = self._build()

    def script(self, job_id: str, *states: str) -> None:
        """GET /api/training_status?job_id=`job_id` answers these states in turn, then the last again."""
        self.statuses[job_id] = [{"job_id": job_id, "status": state, "current_step": step}
                                 for step, state in enumerate(states)]

    def _status(self, job_id: str) -> dict[str, Any]:
        queue = self.statuses[job_id]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def record(request: Request, call_next):
            self.seen.append({"method": request.method, "path": request.url.path, "query": dict(request.query_params),
                              "authorization": request.headers.get("authorization")})
            return await call_next(request)

        @app.get("/api/health")
        async def health() -> dict:
            return {"status": "healthy", "version": "v2"}

        @app.get("/api/training_status")
        async def training_status(job_id: str | None = None):
            if job_id is None:
                return {"job_id": None, "status": "idle", "current_step": 0}
            if job_id not in self.statuses:
                return _error(404, "Not found", f"No training job {job_id}")
            status = self._status(job_id)
            if status["status"] == "restarting":  # as the service answers while its manager restarts
                return _error(503, "Service unavailable", "the training manager is restarting")
            return status

        @app.post("/api/start_training")
        async def start_training(request: Request):
            body = await request.json()
            self.seen[-1]["body"] = body
            if body.get("dataset") == "busy.jsonl":
                return _error(409, "Conflict", "A training job is already in progress")
            return {"status": "started", "job_id": "train_0a1b", "message": "Training started successfully"}

        @app.post("/api/upload_dataset")
        async def upload_dataset(file: UploadFile):
            rows = [line for line in (await file.read()).splitlines() if line.strip()]
            return {"status": "uploaded", "filename": file.filename, "num_examples": len(rows),
                    "validation": {"valid": True, "errors": []}}

        @app.get("/api/jobs/{job_id}/events")  # a page of one event each
        async def events(job_id: str, offset: int = 0):
            history = [{"kind": "queued", "message": f"{job_id} queued"}, {"kind": "completed", "message": "done"}]
            return {"job_id": job_id, "events": history[offset:offset + 1],
                    "next_offset": offset + 1 if offset + 1 < len(history) else None}

        @app.get("/api/models/{model_id}")
        async def model(model_id: int):
            return _error(404, "Not found", f"No model with id {model_id}")

        @app.get("/api/info")  # as a proxy answers while the app behind it is down
        async def info():
            return PlainTextResponse("upstream connect error", status_code=502)

        return app


@pytest.fixture(scope="module")
def stand_in() -> Iterator[tuple[StandIn, str]]:
    stand_in = StandIn()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(stand_in.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the stand-in server did not start"
        time.sleep(0.01)
    try:
        yield stand_in, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_requests_carry_the_bearer_token_only_when_a_key_is_given(stand_in):
    server, url = stand_in
    ForgeClient(url, api_key="s3cret").health()
    ForgeClient(url).health()
    assert [r["authorization"] for r in server.seen[-2:]] == ["Bearer s3cret", None]


def test_urls_and_query_parameters(stand_in):
    server, url = stand_in
    server.script("train_q", "training")
    client = ForgeClient(url + "/")  # a trailing slash is not doubled
    assert client.status("train_q")["status"] == "training"
    assert client.status()["status"] == "idle"
    # Every page, followed by next_offset.
    assert client.events("train_q") == [{"kind": "queued", "message": "train_q queued"},
                                        {"kind": "completed", "message": "done"}]
    seen = server.seen[-4:]
    assert [(r["path"], r["query"]) for r in seen] == [
        ("/api/training_status", {"job_id": "train_q"}), ("/api/training_status", {}),
        ("/api/jobs/train_q/events", {"offset": "0"}), ("/api/jobs/train_q/events", {"offset": "1"})]


def test_start_sends_a_training_request_or_fields(stand_in):
    server, url = stand_in
    client = ForgeClient(url)
    request = TrainingRequest(task="text-generation", model_name="forge/tiny-llama", dataset="d.jsonl", max_steps=2)
    assert client.start(request)["job_id"] == "train_0a1b"
    # Only the fields that were set travel: the service fills in its own defaults.
    assert server.seen[-1]["body"] == {"task": "text-generation", "model_name": "forge/tiny-llama",
                                       "dataset": "d.jsonl", "max_steps": 2}
    client.start({"task": "summarization", "dataset": "d.jsonl"}, dataset="e.jsonl", num_epochs=1)
    # Unvalidated here (num_epochs is not a field): the service's 400 is what tests check.
    assert server.seen[-1]["body"] == {"task": "summarization", "dataset": "e.jsonl", "num_epochs": 1}


def test_upload_sends_the_file_under_the_given_name(stand_in, tmp_path: Path):
    _, url = stand_in
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"input": "a", "output": "b"}\n{"input": "c", "output": "d"}\n')
    client = ForgeClient(url)
    assert client.upload(rows)["filename"] == "rows.jsonl"
    uploaded = client.upload(rows, name="renamed.jsonl")
    assert uploaded["filename"] == "renamed.jsonl" and uploaded["num_examples"] == 2


def test_wait_returns_the_status_that_was_waited_for(stand_in):
    server, url = stand_in
    client = ForgeClient(url)
    server.script("train_w", "queued", "starting", "training", "training", "completed")
    assert client.wait("train_w", {"training"}, poll_s=0.01) == {"job_id": "train_w", "status": "training",
                                                                   "current_step": 2}
    assert client.wait("train_w", lambda s: s["current_step"] >= 3, poll_s=0.01)["current_step"] == 3
    # By default: until the job ends, whichever way.
    assert client.wait("train_w", poll_s=0.01)["status"] == "completed"


def test_wait_raises_when_the_job_ends_in_a_state_not_waited_for(stand_in):
    server, url = stand_in
    client = ForgeClient(url)
    server.script("train_f", "training", "failed")
    with pytest.raises(JobEndedError, match=r"train_f ended failed while waiting for \['completed'\]") as ended:
        client.wait("train_f", {"completed"}, timeout=5, poll_s=0.01)
    assert ended.value.status["status"] == "failed"
    server.script("train_s", "training", "stopped")
    with pytest.raises(JobEndedError, match="ended stopped"):
        client.wait("train_s", lambda s: s["current_step"] > 5, timeout=5, poll_s=0.01)


def test_wait_waits_out_a_restarting_manager(stand_in):
    server, url = stand_in
    server.script("train_r", "training", "restarting", "restarting", "completed")
    assert ForgeClient(url).wait("train_r", poll_s=0.01)["status"] == "completed"
    # A status asked for once is the 503 it got.
    server.script("train_r2", "restarting")
    with pytest.raises(ForgeClientError, match="503"):
        ForgeClient(url).status("train_r2")


def test_wait_gives_up_after_its_timeout(stand_in):
    server, url = stand_in
    server.script("train_t", "training")
    with pytest.raises(TimeoutError, match=r"train_t did not reach \['completed'\] in 0.2s"):
        ForgeClient(url).wait("train_t", {"completed"}, timeout=0.2, poll_s=0.02)


def test_a_non_2xx_answer_raises_with_the_contract_error_body(stand_in):
    _, url = stand_in
    client = ForgeClient(url)
    with pytest.raises(ForgeClientError) as conflict:
        client.start(dataset="busy.jsonl")
    error = conflict.value
    assert (error.status_code, error.error, error.detail) == (409, "Conflict", "A training job is already in progress")
    assert error.body["status_code"] == 409
    assert str(error).startswith("POST /api/start_training answered 409: Conflict")
    with pytest.raises(ForgeClientError) as missing:
        client.model(7)
    assert (missing.value.status_code, missing.value.detail) == (404, "No model with id 7")
    with pytest.raises(ForgeClientError) as unknown:
        client.wait("train_none", {"completed"}, timeout=5)
    assert unknown.value.status_code == 404 and "train_none" in unknown.value.detail


def test_raw_requests_return_the_response_as_it_came(stand_in):
    _, url = stand_in
    client = ForgeClient(url)
    refused = client.post("/api/start_training", json={"dataset": "busy.jsonl"})
    assert refused.status_code == 409 and refused.json()["error"] == "Conflict"
    assert client.send_start(dataset="busy.jsonl").status_code == 409
    assert client.get("/api/models/3").status_code == 404


def test_an_error_body_outside_the_contract_keeps_its_text(stand_in):
    _, url = stand_in
    with pytest.raises(ForgeClientError) as down:
        ForgeClient(url).info()
    assert (down.value.status_code, down.value.error, down.value.detail) == (502, "Bad Gateway",
                                                                             "upstream connect error")


def test_importing_the_client_loads_no_training_stack():
    probe = ("import sys, forge.client\n"
             "heavy = ('torch', 'transformers', 'ray', 'forge.training', 'forge.jobs', 'forge.manager')\n"
             "print(sorted(m for m in heavy if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
