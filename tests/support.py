"""Shared by the tests of a running service (integration/, deployment/): the service under test (over
forge.client) and the error-shape check."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from forge.client import ForgeClient
from forge.schemas import TERMINAL_STATUSES

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATASET = REPO / "examples" / "datasets" / "text_generation.jsonl"
BIN = REPO / ".venv" / "bin"
TINY_SFT = {"task": "text-generation", "model_name": "forge/tiny-llama", "provider": "huggingface", "strategy": "sft"}


def _below_the_ephemeral_ports() -> range:
    """Ports above Ray's worker ports (10002-19999) and below the kernel's ephemeral range.

    No process is handed one of these by bind(0), so a port found free here stays free
    until the service binds it. A port from bind(0) does not: Ray, starting the service's
    own instance, may be handed the same one for one of its servers a moment later.
    """
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    first_ephemeral = int(ranges.read_text().split()[0]) if ranges.exists() else 32768
    return range(20000, max(first_ephemeral, 21000))


_TEST_PORTS = _below_the_ephemeral_ports()


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports, each free when checked, that no other process is handed at random."""
    ports: list[int] = []
    for port in random.sample(_TEST_PORTS, len(_TEST_PORTS)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"fewer than {count} free ports in {_TEST_PORTS}")


def free_port() -> int:
    return free_ports(1)[0]


class RayNode:
    """One `ray start --block` process (a node); `stop` ends every process of the node."""

    def __init__(self, args: list[str], temp_dir: Path, env: dict[str, str], log: Path) -> None:
        listen, grpc, metrics, runtime_env = free_ports(4)
        self.temp_dir = temp_dir
        self._log = log.open("wb")
        self.log_path = log
        self.process = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", *args, f"--temp-dir={temp_dir}",
             f"--dashboard-agent-listen-port={listen}", f"--dashboard-agent-grpc-port={grpc}",
             f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def assert_running(self) -> None:
        assert self.process.poll() is None, self.log_path.read_text()[-2000:]

    def wait_started(self, timeout: float = 240) -> None:
        """Until `ray start` says the node runs (its GCS answers, for a head), as an operator waits for it."""
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in self.log_path.read_text():
            self.assert_running()
            assert time.monotonic() < deadline, f"the node did not start: {self.diagnosis()}"
            time.sleep(0.5)

    def diagnosis(self) -> str:
        """The ends of the node's `ray start` output and of its raylet's log: why it did not start or join."""
        raylet = sorted(self.temp_dir.glob("session_*/logs/raylet.out"))
        return "\n".join([self.log_path.read_text()[-1000:], *(f"{log}:\n{log.read_text()[-3000:]}" for log in raylet)])

    def stop(self) -> None:
        self.ask_to_stop()
        self.wait_stopped()

    def ask_to_stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> None:
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


def ray_node_env(**settings: str) -> dict[str, str]:
    """This process's environment without Ray's or the service's settings (the session's are not another
    instance's), with token auth: this machine's ~/.ray/auth_token, as the session's instance uses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FORGE_"))}
    return {**env, "RAY_AUTH_MODE": "token", **settings}


@contextmanager
def ray_nodes_dir(prefix: str, gcs_port: int) -> Iterator[Path]:
    """A temp dir for the nodes of an instance whose head listens on `gcs_port`, removed afterwards along
    with that instance's record as the current cluster. Short: a node's Unix sockets live in it, and
    their paths may not exceed 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        forget_current_cluster(gcs_port)


def forget_current_cluster(gcs_port: int) -> None:
    """`ray start` records itself as this machine's current cluster; a stopped one must not be
    what a later `ray.init()` tries to join."""
    current = Path("/tmp/ray/ray_current_cluster")
    if current.is_file() and current.read_text().strip().endswith(f":{gcs_port}"):
        current.unlink()


def wait_healthy(url: str, timeout: float = 180, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll GET /api/health until it answers 200; `alive` says whether the process serving it still runs."""
    client = ForgeClient(url, timeout=10)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert alive(), "the service's process exited while starting"
        try:
            if client.get("/api/health").status_code == 200:
                return
        except requests.RequestException:
            # Refused while the proxy starts; slow while the replicas start on a busy machine.
            pass
        time.sleep(1)
    raise AssertionError(f"the service did not answer /api/health within {timeout}s")


@dataclass
class Service:
    """The service under test: a ForgeClient, plus where its files and logs live.

    `upload` and `start` return the raw response, since many tests check an error's shape on it.
    """

    url: str
    ws_url: str
    home: Path
    # GET /api/training_status as the fresh service answered it, before any test ran a job.
    first_status: dict | None = None
    # The Ray dashboard of this session's cluster (the state API asks it, e.g. for live actors).
    dashboard_url: str = ""
    # This Ray instance's session folder (its logs live under logs/).
    session_dir: Path | None = None
    client: ForgeClient = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.client = ForgeClient(self.url, timeout=60)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.client.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.client.post(path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.client.delete(path, **kwargs)

    def status(self, job_id: str) -> dict:
        return self.client.status(job_id)

    def wait_for(self, predicate: Callable[[dict], bool], job_id: str, timeout: float = 180) -> dict:
        """Poll training_status for `job_id` until `predicate` holds; return that status."""
        return self.client.wait(job_id, predicate, timeout=timeout, poll_s=0.3)

    def events(self, job_id: str) -> list[dict]:
        return self.client.events(job_id)

    def metrics(self, job_id: str) -> list[dict]:
        return self.client.metrics(job_id)

    def upload(self, path: Path, name: str | None = None) -> requests.Response:
        return self.client.send_upload(path, name)

    def start(self, **fields: Any) -> requests.Response:
        """POST /api/start_training: the tiny model's SFT with `fields` on top."""
        return self.client.send_start(TINY_SFT, **fields)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


class FeedSubscriber(threading.Thread):
    """Follows /ws/training (one job's, with `job_id`) and keeps every message.

    It reads until the service closes the socket (`close_code` says how; after a followed
    job's terminal message it must), until `stop()`, or until `quiet_s` pass without a message.
    """

    def __init__(self, service: Service, job_id: str | None = None, quiet_s: float = 300) -> None:
        super().__init__(daemon=True)
        self.url = f"{service.ws_url}/ws/training" + (f"?job_id={job_id}" if job_id else "")
        self.job_id = job_id
        self.quiet_s = quiet_s
        self.messages: list[dict] = []
        self.error: Exception | None = None
        self.close_code: int | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.url, open_timeout=30) as socket:
                last = time.monotonic()
                while not self._stopping.is_set() and time.monotonic() - last < self.quiet_s:
                    try:
                        raw = socket.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    self.messages.append(json.loads(raw))
                    last = time.monotonic()
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd is not None else None
        except Exception as error:  # reported by the test
            self.error = error

    def stop(self) -> None:
        self._stopping.set()
        self.join(30)

    def statuses(self) -> list[str]:
        return [m["status"] for m in self.messages]

    def ended(self) -> bool:
        return bool(self.messages) and self.messages[-1]["status"] in TERMINAL_STATUSES


def assert_error_shape(response: requests.Response, status_code: int) -> dict:
    assert response.status_code == status_code, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["status_code"] == status_code
    assert "Traceback" not in response.text
    return body


def wait_for_registered_checkpoint(service: Service, job_id: str, timeout: float = 120, after: int = 0) -> int:
    """Wait until the running job keeps a checkpoint past step `after` (GET .../checkpoints); return its step.

    The list is Ray Train's record: the worker's "checkpoint" event comes first, the
    controller records the checkpoint at its next poll of the workers, and only then
    does a restart resume from it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [c["step"] for c in service.client.checkpoints(job_id)]
        if steps and max(steps) > after:
            status = service.status(job_id)
            assert status["status"] == "training", f"the job ended before the fault could hit it: {status}"
            return max(steps)
        time.sleep(0.1)
    raise AssertionError(f"Ray Train recorded no checkpoint of {job_id} past step {after} within {timeout}s: "
                         f"{service.events(job_id)}")


def share_builtin_models(built: Path, home: Path) -> None:
    """Copy the built-in models found in `built` (a FORGE_HOME's builtin/ folder) into `home`'s.

    The build is deterministic (tests/unit/test_builtin.py), so a service with its own
    home would only build the same files again, seconds before its first job can start.
    A build only ever appears by rename, so every folder found here is complete.
    """
    for model in sorted(built.glob("forge--*")) if built.is_dir() else []:
        if model.is_dir() and not (home / "builtin" / model.name).exists():
            shutil.copytree(model, home / "builtin" / model.name)


# The app arguments of a test's extra app that never generates: no Playground replica starts with
# it (each would import torch, transformers and PEFT, several seconds of CPU, for nothing).
NO_PLAYGROUND = {"playground_min_replicas": 0, "playground_initial_replicas": 0}


@contextmanager
def side_app(service: Service, name: str, environ: dict[str, str], **app_args: Any) -> Iterator[Service]:
    """A second app in the session's cluster, under /`name`, with its own manager and the FORGE_* `environ`.

    `environ` must set FORGE_HOME; `app_args` are deployments.app.AppArgs fields. On exit the
    app is deleted and its manager killed.
    """
    import ray
    from ray import serve

    from deployments.app import AppArgs, build_app
    from forge.settings import RAY_NAMESPACE, Settings

    settings = Settings.from_env({"FORGE_MANAGER_NAME": f"training_manager_{name}", **environ})
    share_builtin_models(service.home / "builtin", Path(environ["FORGE_HOME"]))
    serve.run(build_app(AppArgs(**app_args), settings), name=name, route_prefix=f"/{name}")
    try:
        yield Service(url=f"{service.url}/{name}", ws_url=f"{service.ws_url}/{name}", home=Path(environ["FORGE_HOME"]))
    finally:
        delete_app(name)
        ray.kill(ray.get_actor(settings.manager_name, namespace=RAY_NAMESPACE), no_restart=True)


@contextmanager
def keyed_app(service: Service, name: str, key: str, **app_args: Any) -> Iterator[Service]:
    """The real ingress again, built with FORGE_API_KEY=`key`, under /`name` (same manager, same cluster).

    `app_args`: deployments.app.AppArgs fields (default: a Playground that may scale to none).
    """
    from pydantic import SecretStr
    from ray import serve

    from deployments.app import AppArgs, build_app
    from forge.settings import Settings

    settings = Settings.from_env().model_copy(update={"api_key": SecretStr(key)})
    serve.run(build_app(AppArgs(**{"playground_min_replicas": 0, **app_args}), settings), name=name,
              route_prefix=f"/{name}")
    try:
        yield Service(url=f"{service.url}/{name}", ws_url=f"{service.ws_url}/{name}", home=service.home,
                      session_dir=service.session_dir)
    finally:
        delete_app(name)


def delete_app(name: str) -> None:
    """Delete a test's extra app without waiting for it to go.

    Its replicas then drain in the background (Serve's graceful shutdown waits 2 s or more
    per replica): nothing calls them any more, and the app's name is never reused.
    """
    from ray import serve

    serve.delete(name, _blocking=False)


# ------------------------------------------------------------------ benchmark scripts

def bench_scripts(*, measuring_the_service: bool) -> list[Path]:
    """bench/'s scripts (modules starting with "_" are shared helpers) that do, or do not, measure the service."""
    scripts = sorted(s for s in (REPO / "bench").glob("*.py") if not s.name.startswith("_"))
    return [s for s in scripts if ("from _service import" in s.read_text()) == measuring_the_service]


def run_bench_quick(script: Path, *args: str) -> list[dict]:
    """Run a benchmark script in its quick mode; the JSON figures it printed, each checked well-formed."""
    done = subprocess.run([sys.executable, str(script), "--quick", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert figures
    for figure in figures:
        assert {"figure", "ours", "baseline", "ratio", "goal", "machine", "date"} <= set(figure)
        assert figure["ours"] > 0 and figure["baseline"] > 0
        # The ratio is rounded to 3 decimals: a small ratio (0.041 for 0.0415) is off by up to 0.0005.
        assert figure["ratio"] == pytest.approx(figure["ours"] / figure["baseline"], rel=0.01, abs=0.001)
    return figures
