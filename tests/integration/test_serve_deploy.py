"""`serve deploy deployments/serve_config.yaml` against a running local cluster brings the service up.

A second Ray instance is started the way an operator starts one (`ray start
--head`, here with `--block` so the test owns its processes and SIGTERM stops
them), with FORGE_HOME in its environment as cluster.yaml sets it; the config is
deployed with the real `serve deploy` CLI, on a free port instead of 8000.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from support import REPO, SAMPLE_DATASET, Service, free_ports, wait_healthy

from forge.schemas import TERMINAL_STATUSES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = REPO / ".venv" / "bin"


def test_serve_deploy_of_the_shipped_config_on_a_ray_start_cluster(tmp_path: Path):
    gcs, dashboard, client, agent, agent_grpc, metrics, runtime_env_agent, http = free_ports(8)
    config = yaml.safe_load((REPO / "deployments" / "serve_config.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": http}
    deployed = tmp_path / "serve_config.yaml"
    deployed.write_text(yaml.safe_dump(config))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FORGE_"))}
    # No drain on SIGTERM: Ray would wait its 30 s for this lone node's Serve replicas to move elsewhere.
    env.update(FORGE_HOME=str(tmp_path / "home"), RAY_TRAIN_ENABLE_PRINT_PATCH="0",
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
    log = (tmp_path / "ray.log").open("wb")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus=2", f"--port={gcs}",
         f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
         f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
         f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env_agent}"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert head.poll() is None, (tmp_path / "ray.log").read_text()[-2000:]
            deploy = subprocess.run(
                [str(BIN / "serve"), "deploy", str(deployed), "--address", f"http://127.0.0.1:{dashboard}"],
                cwd=REPO, env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=120)
            if deploy.returncode == 0:
                break
            time.sleep(3)  # the dashboard is still starting
        assert deploy.returncode == 0, deploy.stderr[-2000:]

        service = Service(url=f"http://127.0.0.1:{http}", ws_url=f"ws://127.0.0.1:{http}", home=tmp_path / "home")
        wait_healthy(service.url, alive=lambda: head.poll() is None)
        assert service.get("/api/health").json()["status"] == "healthy"

        uploaded = service.upload(SAMPLE_DATASET)
        assert uploaded.status_code == 200, uploaded.text
        job_id = service.start(dataset=uploaded.json()["filename"], max_steps=2, eval_split=0).json()["job_id"]
        final = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, job_id)
        assert final["status"] == "completed", final
        # The settings came from the config and from the environment Ray was started with.
        assert (tmp_path / "home" / "forge.db").is_file()
        assert (tmp_path / "home" / "models" / str(final["model_id"]) / "adapter_model.safetensors").is_file()
    finally:
        head.send_signal(signal.SIGTERM)  # stops every process of this instance
        try:
            head.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        log.close()
        # `ray start` records itself as this machine's current cluster; a stopped one
        # must not be what a later `ray.init()` tries to join.
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip().endswith(f":{gcs}"):
            current.unlink()
