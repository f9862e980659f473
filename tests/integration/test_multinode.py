"""Multi-node: a head without training resources and two worker nodes, on this machine.

`ray.cluster_utils.Cluster` starts three real Ray nodes (each its own raylet and temp
dir); the custom resource `forge_trainer` stands in for the GPUs a cloud worker
node would advertise. The cluster needs its own driver process, so the scenario
runs in multinode_scenario.py and reports what ran where; this test checks it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCENARIO = Path(__file__).with_name("multinode_scenario.py")


def test_a_two_worker_job_runs_on_both_worker_nodes_and_another_node_serves_its_adapter(tmp_path: Path):
    done = subprocess.run([sys.executable, str(SCENARIO), str(tmp_path)], capture_output=True, text=True,
                          timeout=600, cwd=SCENARIO.parents[2], check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads((tmp_path / "facts.json").read_text())

    assert facts["status"]["status"] == "completed", facts["status"]
    assert facts["status"]["current_step"] == 6
    # One training worker on each worker node; none on the head.
    assert facts["train_worker_nodes"] == facts["worker_nodes"]
    assert facts["head_node"] not in facts["train_worker_nodes"]
    assert len(set(facts["temp_dirs"])) == 3
    # The registry's owner stays on the head node.
    assert facts["manager_nodes"] == [facts["head_node"]]
    # The adapter rank 0 wrote is in FORGE_STORAGE, and a replica on a node that trained
    # nothing (the head) loads it from there and generates.
    assert {"adapter_model.safetensors", "adapter_config.json", "forge.json"} <= set(facts["model_files"])
    assert facts["playground_nodes"] == [facts["head_node"]]
    assert facts["generate_status"] == 200, facts["generated"]
    assert isinstance(facts["generated"]["generated_text"], str)
    assert 0 <= facts["generated"]["tokens_generated"] <= 8
