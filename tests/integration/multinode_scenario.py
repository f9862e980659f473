"""A three-node Ray cluster on this machine, the service on it, one 2-worker job: what happened where.

Run by test_multinode.py in its own process (a driver joins one cluster only):

    python tests/integration/multinode_scenario.py <workdir>

- head: no CPU and no `forge_trainer` resource, so no training worker fits there;
  `forge_playground` pins the Playground replica to it.
- two worker nodes: 1 CPU and `forge_trainer` each (standing in for a GPU); each
  has its own Ray temp dir.
FORGE_STORAGE is one folder all nodes see (as an NFS mount would be); the service
is started with FORGE_WORKER_RESOURCES={"forge_trainer": 1}. Writes the facts
the test checks to <workdir>/facts.json.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from support import SAMPLE_DATASET, free_port, wait_healthy

from forge.client import ForgeClient


def main(workdir: Path) -> None:
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster
    from ray.util.state import list_actors

    os.environ["RAY_TRAIN_ENABLE_PRINT_PATCH"] = "0"
    # Three nodes' processes start at once on a small machine: give each more than the 60 s default.
    os.environ["RAY_raylet_start_wait_time_s"] = "240"
    storage = workdir / "shared-storage"
    # Each node's temp dir holds its Unix sockets, whose paths may not exceed 107 bytes: keep them short.
    ray_dirs = Path(tempfile.mkdtemp(prefix="forge-mn-"))
    # The dashboard (which answers the state API below) on a port of its own: another Ray on this
    # machine, such as the test session's, may hold the default 8265.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "resources": {"forge_playground": 1}, "temp_dir": str(ray_dirs / "head"),
        "include_dashboard": True, "dashboard_port": free_port()})
    workers = [cluster.add_node(num_cpus=1, resources={"forge_trainer": 1}, temp_dir=str(ray_dirs / f"w{i}"))
               for i in (1, 2)]
    try:
        context = ray.init(address=cluster.address, namespace="modelforge-multinode", log_to_driver=False)
        if not context.dashboard_url:
            raise SystemExit("the head node's dashboard did not start")
        port = free_port()
        # One proxy, on the head: the default (a proxy on every node with a replica) would put several
        # proxies of these three simulated nodes on one port of this one machine, and a request could
        # reach a worker node's proxy before it has learnt the app's routes (a 404).
        serve.start(http_options={"host": "127.0.0.1", "port": port, "location": "HeadOnly"})
        from deployments.app import AppArgs, build_app
        from forge.settings import Settings

        settings = Settings.from_env({"FORGE_HOME": str(workdir / "home"), "FORGE_STORAGE": str(storage),
                                      "FORGE_WORKER_RESOURCES": json.dumps({"forge_trainer": 1})})
        args = AppArgs(playground_max_replicas=1, playground_resources={"forge_playground": 1})
        serve.run(build_app(args, settings), name="modelforge", route_prefix="/")
        client = ForgeClient(f"http://127.0.0.1:{port}")
        wait_healthy(client.url)
        client.upload(SAMPLE_DATASET, name="cluster.jsonl")
        job_id = client.start(task="text-generation", model_name="forge/tiny-llama", dataset="cluster.jsonl",
                              num_workers=2, max_steps=6, eval_split=0)["job_id"]
        status = client.wait(job_id, timeout=300)
        model_id = status["model_id"]
        generated = client.post("/api/playground/generate", timeout=120, json={
            "model_id": model_id, "prompt": "What is 3 plus 4?", "max_new_tokens": 8, "temperature": 0})

        actors = list_actors(address=f"http://{context.dashboard_url}", limit=10000, detail=True)

        def nodes_of(fragment: str) -> list[str]:
            return sorted(a.node_id for a in actors if fragment in a.class_name)

        (workdir / "facts.json").write_text(json.dumps({
            "head_node": cluster.head_node.node_id,
            "worker_nodes": sorted(w.node_id for w in workers),
            "temp_dirs": [cluster.head_node.get_temp_dir_path(), *(w.get_temp_dir_path() for w in workers)],
            "status": status,
            "train_worker_nodes": nodes_of("RayTrainWorker"),
            "manager_nodes": nodes_of("TrainingManager"),
            "playground_nodes": nodes_of("Playground"),
            "model_files": sorted(p.name for p in (storage / "models" / str(model_id)).iterdir())
            if model_id is not None else [],
            "generate_status": generated.status_code,
            "generated": generated.json(),
        }))
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(ray_dirs, ignore_errors=True)
        # The cluster recorded itself as this machine's current one; a later `ray.init()` must not join it.
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip() == cluster.address:
            current.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
