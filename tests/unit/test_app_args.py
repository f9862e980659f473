"""The app's arguments (`serve run deployments.app:build_app name=value ...`) and the Playground options they make."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.app import AppArgs, playground_options


def autoscaling(**args) -> dict:
    return playground_options(AppArgs(**args))["autoscaling_config"]


def test_by_default_one_playground_replica_starts_and_two_may_run():
    config = autoscaling()
    assert (config["min_replicas"], config["initial_replicas"], config["max_replicas"]) == (1, 1, 2)


def test_with_no_minimum_one_replica_still_starts_unless_none_is_asked_for():
    assert autoscaling(playground_min_replicas=0)["initial_replicas"] == 1
    config = autoscaling(playground_min_replicas=0, playground_initial_replicas=0)
    assert (config["min_replicas"], config["initial_replicas"]) == (0, 0)
    assert autoscaling(playground_min_replicas=2, playground_max_replicas=4)["initial_replicas"] == 2


@pytest.mark.parametrize("args", [
    {"playground_min_replicas": 3, "playground_max_replicas": 2},
    {"playground_min_replicas": 1, "playground_initial_replicas": 0},
    {"playground_initial_replicas": 3, "playground_max_replicas": 2},
    {"playground_initial_replicas": -1},
])
def test_replica_counts_out_of_order_are_refused(args):
    with pytest.raises(ValidationError):
        AppArgs(**args)


def test_resources_and_the_defaults_are_kept_apart():
    pinned = playground_options(AppArgs(playground_resources={"forge_playground": 1}, playground_num_cpus=1))
    assert pinned["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0, "resources": {"forge_playground": 1}}
    # A second build starts from the defaults again: the first one's resources did not leak into them.
    assert "resources" not in playground_options(AppArgs())["ray_actor_options"]
