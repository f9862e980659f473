"""Shared by the bench scripts that measure the running service: the whole service in
this process's own Ray instance (2 CPUs), Serve's HTTP proxy on a free loopback port,
and the few REST calls every such script makes.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import requests

TERMINAL = {"completed", "failed", "stopped", "interrupted"}


class BenchService:
    def __init__(self, home: Path, *, dashboard: bool = True, **forge_env: str) -> None:
        """`forge_env`: FORGE_* settings on top of FORGE_HOME; `dashboard`: start Ray's (the state API needs it)."""
        import ray
        from ray import serve

        os.environ.update({"FORGE_HOME": str(home), "RAY_TRAIN_ENABLE_PRINT_PATCH": "0", **forge_env})
        with socket.socket() as sock:  # a free loopback port: other Serve apps may hold 8000
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        # "local": a fresh instance of our own, never a cluster that something else started.
        context = ray.init(address="local", num_cpus=2, namespace="modelforge-bench", log_to_driver=False,
                           include_dashboard=dashboard)
        self.dashboard = f"http://{context.dashboard_url}" if dashboard else None
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        from deployments.app import AppArgs, build_app

        serve.run(build_app(AppArgs()), name="modelforge", route_prefix="/")
        self.url = f"http://127.0.0.1:{port}"
        self.http = requests.Session()

    def close(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=120, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        response = self.http.post(self.url + path, timeout=600, **kwargs)
        if response.status_code != 200:
            raise SystemExit(f"POST {path} answered {response.status_code}: {response.text[:1000]}")
        return response

    def upload(self, path: Path) -> str:
        """The stored name of the JSONL file at `path`, uploaded as multipart."""
        with path.open("rb") as handle:
            response = self.post("/api/upload_dataset", files={"file": (path.name, handle, "application/jsonl")})
        return response.json()["filename"]

    def status(self, job_id: str) -> dict:
        return self.get("/api/training_status", params={"job_id": job_id}).json()

    def wait(self, job_id: str, statuses: set[str], timeout: float = 900, poll_s: float = 0.2) -> dict:
        """The job's status once it is one of `statuses`; SystemExit if it ends otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(job_id)
            if status["status"] in statuses:
                return status
            if status["status"] in TERMINAL:
                raise SystemExit(f"job {job_id} ended {status['status']} while waiting for {statuses}: {status}")
            time.sleep(poll_s)
        raise SystemExit(f"job {job_id} did not reach {statuses} in {timeout}s")
