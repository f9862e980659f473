"""Shared by the bench scripts that measure the running service: the whole service in
this process's own Ray instance (2 CPUs), Serve's HTTP proxy on a free loopback port,
and the few REST calls every such script makes (through forge.client), each ending the
script with SystemExit when it fails.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from forge.client import ForgeClient, ForgeClientError, JobEndedError


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
        # One kept-alive connection: the bench calls from one thread, and what it times is the service.
        # Posts may train or upload for minutes: 600 s, and gets 120 s.
        self.client = ForgeClient(self.url, timeout=600, session=requests.Session())

    def close(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.client.get(path, **{"timeout": 120, **kwargs})

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """The answer to POST `path`; SystemExit unless it is a 200."""
        response = self.client.post(path, **kwargs)
        if response.status_code != 200:
            raise SystemExit(f"POST {path} answered {response.status_code}: {response.text[:1000]}")
        return response

    def upload(self, path: Path) -> str:
        """The stored name of the JSONL file at `path`, uploaded as multipart."""
        with _or_exit():
            return self.client.upload(path)["filename"]

    def status(self, job_id: str) -> dict:
        with _or_exit():
            return self.client.status(job_id)

    def metrics(self, job_id: str) -> list[dict]:
        with _or_exit():
            return self.client.metrics(job_id)

    def wait(self, job_id: str, statuses: set[str], timeout: float = 900, poll_s: float = 0.2) -> dict:
        """The job's status once it is one of `statuses`; SystemExit if it ends otherwise."""
        with _or_exit():
            return self.client.wait(job_id, statuses, timeout=timeout, poll_s=poll_s)


@contextmanager
def _or_exit() -> Iterator[None]:
    """A failed request or wait ends the bench script with the client's message."""
    try:
        yield
    except (ForgeClientError, JobEndedError, TimeoutError) as error:
        raise SystemExit(str(error)) from error
