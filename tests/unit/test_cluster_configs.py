"""cluster.yaml passes Ray's own cluster-launcher validation; serve_config.yaml matches `serve build`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_cluster_yaml_passes_the_autoscaler_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # raises on any schema violation
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"]["CPU"] == 0
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert any(t["resources"].get("GPU", 0) >= 1 and t["max_workers"] > t["min_workers"] for t in workers)
    assert any("make install" in command for command in config["setup_commands"])
    assert any("serve deploy deployments/serve_config.yaml" in c for c in config["head_start_ray_commands"])


def test_the_cluster_trains_on_the_gpus_its_autoscaler_can_start():
    """The GPU workers start at 0, so the service must be told to train on GPUs, and how many there can be."""
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    start = next(c for c in config["head_start_ray_commands"] if "ray start --head" in c)
    environment = dict(word.split("=", 1) for word in start.split() if word.startswith("FORGE_"))
    assert environment["FORGE_TRAIN_DEVICE"] == "gpu"
    can_start = sum(t["max_workers"] * t["resources"].get("GPU", 0) for name, t in config["available_node_types"].items()
                    if name != config["head_node_type"])
    assert int(environment["FORGE_MAX_TRAIN_GPUS"]) == can_start > 0


def _deployments(config: dict) -> dict:
    (application,) = config["applications"]
    return {d["name"]: d for d in application["deployments"]}


def test_serve_config_matches_what_serve_build_generates(tmp_path: Path):
    generated = tmp_path / "generated.yaml"
    subprocess.run([str(Path(sys.executable).with_name("serve")), "build", "deployments.app:app", "-o", str(generated)],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    fresh = yaml.safe_load(generated.read_text())
    kept = yaml.safe_load((REPO / "deployments" / "serve_config.yaml").read_text())
    assert _deployments(kept) == _deployments(fresh)
    for key in ("proxy_location", "http_options", "logging_config"):
        assert kept[key] == fresh[key]
    (application,) = kept["applications"]
    assert (application["name"], application["route_prefix"], application["import_path"]) == (
        "modelforge", "/", "deployments.app:app")
    assert all(name.startswith(("FORGE_", "RAY_")) for name in application["runtime_env"]["env_vars"])
    playground = _deployments(kept)["Playground"]
    assert playground["autoscaling_config"]["max_replicas"] > playground["autoscaling_config"]["min_replicas"]
    assert "num_gpus" in playground["ray_actor_options"]
