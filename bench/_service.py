"""Shared by the bench scripts that measure the running service, and the few REST calls every
such script makes (through forge.client), each ending the script with SystemExit when it fails.

The service is either the script's own (the default: this process's own Ray instance on
2 CPUs, Serve's HTTP proxy on a free loopback port, a temporary FORGE_HOME), or one that
is already running (--url, --home): an operator's deployment, or the test session's. A
running service is someone else's, so the script leaves it as it found it: it stops the
jobs it started that are still running and deletes the models they trained. Its uploaded
datasets stay (the API deletes no dataset), and its settings are that service's: each
script's docstring says what it does differently there.
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from forge.client import ForgeClient, ForgeClientError, JobEndedError
from forge.schemas import TERMINAL_STATUSES


def service_arguments(parser: argparse.ArgumentParser) -> None:
    """--url, --home and --dashboard: measure a service that is already running instead of starting one."""
    group = parser.add_argument_group("a running service (default: the script starts its own)")
    group.add_argument("--url", help="the service's base URL, e.g. http://127.0.0.1:8000")
    group.add_argument("--home", type=Path,
                       help="that service's FORGE_HOME, on this machine and local storage (needed with --url: "
                            "the baselines load the files the service built and trained)")
    group.add_argument("--dashboard",
                       help="that service's Ray dashboard, e.g. http://127.0.0.1:8265 (serving.py reads its "
                            "processes from Ray's state API; a cluster with token authentication, a local "
                            "one's default, also needs RAY_AUTH_MODE=token in this script's environment)")


class BenchService:
    """The service at `url` whose FORGE_HOME is `home`; `dashboard`: its Ray dashboard, when known."""

    def __init__(self, url: str, home: Path, dashboard: str | None = None, *, owned: bool = False) -> None:
        self.url = url.rstrip("/")
        self.home = home
        self.dashboard = dashboard
        # Ours to shut down (started by this script), or a running one to leave as found.
        self.owned = owned
        self.jobs: list[str] = []  # the jobs this script started, in order
        self.registered: list[int] = []  # the models this script registered from checkpoints
        # One kept-alive connection: the bench calls from one thread, and what it times is the service.
        # Posts may train or upload for minutes: 600 s, and gets 120 s.
        self.client = ForgeClient(self.url, timeout=600, session=requests.Session())

    @classmethod
    def launch(cls, home: Path, *, dashboard: bool = True, **forge_env: str) -> "BenchService":
        """The whole service in this process's own Ray instance, with FORGE_HOME `home`.

        `forge_env`: FORGE_* settings on top of FORGE_HOME; `dashboard`: start Ray's (the state API needs it).
        """
        import ray
        from ray import serve

        os.environ.update({"FORGE_HOME": str(home), "RAY_TRAIN_ENABLE_PRINT_PATCH": "0", **forge_env})
        with socket.socket() as sock:  # a free loopback port: other Serve apps may hold 8000
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        # "local": a fresh instance of our own, never a cluster that something else started.
        context = ray.init(address="local", num_cpus=2, namespace="modelforge-bench", log_to_driver=False,
                           include_dashboard=dashboard)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        from deployments.app import AppArgs, build_app

        serve.run(build_app(AppArgs()), name="modelforge", route_prefix="/")
        return cls(f"http://127.0.0.1:{port}", home, f"http://{context.dashboard_url}" if dashboard else None,
                   owned=True)

    @classmethod
    def from_args(cls, args: argparse.Namespace, home: Path, *, dashboard: bool = True,
                  **forge_env: str) -> "BenchService":
        """The running service that --url names, or (without it) one launched with FORGE_HOME `home`.

        `dashboard`: whether this script reads Ray's state (a running service's then comes from --dashboard).
        """
        if not args.url:
            return cls.launch(home, dashboard=dashboard, **forge_env)
        if args.home is None:
            raise SystemExit("--url needs --home: that service's FORGE_HOME")
        if dashboard and not args.dashboard:
            # No default: on a shared machine 8265 may be another cluster's, and we would measure its processes.
            raise SystemExit("--url needs --dashboard here: that service's Ray dashboard")
        return cls(args.url, args.home.resolve(), args.dashboard)

    def close(self) -> None:
        """Shut our own service down; leave a running one as it was found."""
        if not self.owned:
            return self._clean_up()
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()

    def _clean_up(self) -> None:
        """Stop this script's jobs that still run (a failed bench may leave one training) and delete their models."""
        for job_id in self.jobs:
            with _or_exit():
                status = self.client.status(job_id)
                if status["status"] not in TERMINAL_STATUSES:
                    self.client.stop(job_id)
                    status = self.client.wait(job_id, TERMINAL_STATUSES, timeout=300)
                if status.get("model_id") is not None:
                    self.client.delete_model(status["model_id"])
        for model_id in self.registered:
            with _or_exit():
                self.client.delete_model(model_id)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.client.get(path, **{"timeout": 120, **kwargs})

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """The answer to POST `path`; SystemExit unless it is a 200."""
        response = self.client.post(path, **kwargs)
        if response.status_code != 200:
            raise SystemExit(f"POST {path} answered {response.status_code}: {response.text[:1000]}")
        return response

    def start_job(self, body: dict) -> str:
        """POST /api/start_training with `body`; the job's id, remembered for close()."""
        job_id = self.post("/api/start_training", json=body).json()["job_id"]
        self.jobs.append(job_id)
        return job_id

    def wait_for_checkpoints(self, job_id: str, count: int, timeout: float = 900) -> list[int]:
        """The steps of the job's registrable checkpoints, once it keeps at least `count`."""
        deadline = time.monotonic() + timeout
        with _or_exit():
            while len(steps := [c["step"] for c in self.client.checkpoints(job_id) if c["registrable"]]) < count:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{job_id} kept {len(steps)} checkpoints in {timeout:.0f} s, not {count}")
                time.sleep(0.2)
        return sorted(steps)

    def register_checkpoints(self, job_id: str, count: int) -> list[int]:
        """Register the job's latest `count` checkpoints as models (oldest first): their ids, deleted by close()."""
        steps = self.wait_for_checkpoints(job_id, count)[-count:]
        with _or_exit():
            models = [self.client.register_checkpoint(job_id, step)["id"] for step in steps]
        self.registered += models
        return models

    def upload(self, path: Path, name: str | None = None) -> str:
        """The stored name of the JSONL file at `path`, uploaded as multipart (as `name`, else its own name)."""
        with _or_exit():
            return self.client.upload(path, name)["filename"]

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
