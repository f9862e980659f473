"""An operator's cluster: three nodes started with `ray start`, the shipped config deployed with `serve deploy`.

The nodes run on this machine, each its own raylet with its own temp dir, started the
way an operator starts them (here with `--block`, so the test owns their processes and
SIGTERM stops them), with the FORGE_* settings in their environment as cluster.yaml
sets them:
- head: no CPU and no `forge_trainer`, so no training worker fits there;
  `forge_playground` pins the Playground replica to it.
- two worker nodes: 1 CPU and `forge_trainer` each (standing in for a GPU).
FORGE_STORAGE is one folder all nodes see (as an NFS mount would be).

`deployments/serve_config.yaml` is deployed with the real `serve deploy` CLI, edited
as an operator would for this cluster: a free port instead of 8000, one proxy (on
the head: proxies of three nodes of one machine would share a port), and the
Playground pinned to the head. One two-worker job trains across both worker nodes,
and the head, which trained nothing, serves its adapter from the storage.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from support import (
    BIN,
    REPO,
    SAMPLE_DATASET,
    RayNode,
    Service,
    free_ports,
    ray_node_env,
    ray_nodes_dir,
    wait_healthy,
)

from forge.schemas import TERMINAL_STATUSES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _operator_config(port: int) -> dict:
    config = yaml.safe_load((REPO / "deployments" / "serve_config.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    config["proxy_location"] = "HeadOnly"
    (app,) = config["applications"]
    playground = next(d for d in app["deployments"] if d["name"] == "Playground")
    playground["ray_actor_options"]["resources"] = {"forge_playground": 1}
    playground["autoscaling_config"]["max_replicas"] = 1
    return config


def _ray_list(kind: str, dashboard_url: str, env: dict[str, str]) -> list[dict]:
    """`ray list <kind> --detail` against the cluster, as an operator would ask it (the state API, as JSON)."""
    listed = subprocess.run(
        [str(BIN / "ray"), "list", kind, "--address", dashboard_url, "--detail", "--limit", "10000", "--format", "json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(listed.stdout)


def test_serve_deploy_on_a_three_node_cluster_trains_across_workers_and_serves_from_the_head(tmp_path: Path):
    gcs, dashboard, client_server, http = free_ports(4)
    deployed = tmp_path / "serve_config.yaml"
    deployed.write_text(yaml.safe_dump(_operator_config(http)))
    home, storage = tmp_path / "home", tmp_path / "shared-storage"

    # With token auth (ray_node_env): worker nodes and the CLIs that talk to the cluster (`serve deploy`,
    # `ray list`) send this machine's ~/.ray/auth_token only when told to.
    env = ray_node_env(
        FORGE_HOME=str(home), FORGE_STORAGE=str(storage), FORGE_WORKER_RESOURCES=json.dumps({"forge_trainer": 1}),
        RAY_TRAIN_ENABLE_PRINT_PATCH="0",
        # No drain on SIGTERM: Ray would wait its 30 s for a stopping node's replicas to move elsewhere.
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",
        # Three nodes start at once on a small machine: give each more than the 60 s default.
        RAY_raylet_start_wait_time_s="240",
    )
    with ray_nodes_dir("forge-cl-", gcs) as ray_dirs:
        nodes = [RayNode(["--head", "--num-cpus=0", "--resources={\"forge_playground\": 1}", f"--port={gcs}",
                          f"--dashboard-port={dashboard}", f"--ray-client-server-port={client_server}"],
                         ray_dirs / "head", env, tmp_path / "head.log")]
        try:
            # The workers once the head runs, as an operator starts them (cluster.yaml's worker start
            # commands run once the head is up).
            nodes[0].wait_started()
            nodes += [RayNode([f"--address=127.0.0.1:{gcs}", "--num-cpus=1", "--resources={\"forge_trainer\": 1}"],
                              ray_dirs / f"w{i}", env, tmp_path / f"worker{i}.log") for i in (1, 2)]
            dashboard_url = f"http://127.0.0.1:{dashboard}"
            deadline = time.monotonic() + 180
            while True:
                for node in nodes:
                    node.assert_running()
                deploy = subprocess.run(
                    [str(BIN / "serve"), "deploy", str(deployed), "--address", dashboard_url],
                    cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
                if deploy.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(3)  # the dashboard is still starting
            assert deploy.returncode == 0, deploy.stderr[-2000:]

            service = Service(url=f"http://127.0.0.1:{http}", ws_url=f"ws://127.0.0.1:{http}", home=home)
            wait_healthy(service.url, alive=lambda: all(n.process.poll() is None for n in nodes))
            assert service.get("/api/health").json()["status"] == "healthy"
            while len(live := [n for n in _ray_list("nodes", dashboard_url, env) if n["state"] == "ALIVE"]) < 3:
                assert time.monotonic() < deadline, "the worker nodes did not join: " + "\n".join(
                    [str(live), *(node.diagnosis() for node in nodes[1:])])
                time.sleep(1)
            head = [n["node_id"] for n in live if "forge_playground" in n["resources_total"]]
            workers = sorted(n["node_id"] for n in live if "forge_trainer" in n["resources_total"])
            assert len(head) == 1 and len(workers) == 2, live

            uploaded = service.upload(SAMPLE_DATASET, name="cluster.jsonl")
            assert uploaded.status_code == 200, uploaded.text
            started = service.start(dataset="cluster.jsonl", num_workers=2, max_steps=6, eval_split=0)
            assert started.status_code == 200, started.text
            final = service.wait_for(lambda s: s["status"] in TERMINAL_STATUSES, started.json()["job_id"], timeout=300)
            assert final["status"] == "completed" and final["current_step"] == 6, final
            generated = service.post("/api/playground/generate", timeout=120, json={
                "model_id": final["model_id"], "prompt": "What is 3 plus 4?", "max_new_tokens": 8, "temperature": 0})
            assert generated.status_code == 200, generated.text
            assert isinstance(generated.json()["generated_text"], str)
            assert 0 <= generated.json()["tokens_generated"] <= 8

            actors = _ray_list("actors", dashboard_url, env)

            def nodes_of(class_fragment: str) -> list[str]:
                return sorted(a["node_id"] for a in actors if class_fragment in a["class_name"])

            # One training worker on each worker node; none on the head.
            assert nodes_of("RayTrainWorker") == workers
            # The registry's owner and the replica that served the adapter stay on the head,
            # which trained nothing: it loaded the adapter rank 0 wrote from FORGE_STORAGE.
            assert nodes_of("TrainingManager") == head
            assert nodes_of("Playground") == head
            # The settings came from the environment the nodes were started with.
            assert (home / "forge.db").is_file()
            model_files = {p.name for p in (storage / "models" / str(final["model_id"])).iterdir()}
            assert {"adapter_model.safetensors", "adapter_config.json", "forge.json"} <= model_files
        finally:
            # The workers first (both at once), the head last.
            for worker in nodes[1:]:
                worker.ask_to_stop()
            for worker in nodes[1:]:
                worker.wait_stopped()
            if nodes:
                nodes[0].stop()
