"""The cluster's one TrainingManager: created on first use, found by name, replaced when a deploy changes its settings.

The manager is a named, detached actor (it outlives the deployments that use it and
a redeploy), restarted by Ray if its process dies, and always on the head node.
"""

from __future__ import annotations

import time

import ray

from forge.jobs.runners import RUNNER_ENV
from forge.manager import TrainingManager
from forge.settings import RAY_NAMESPACE, Settings

# Ray gives the head node, and only it, this resource.
HEAD_NODE_RESOURCE = "node:__internal_head__"
# Settings only the ingress reads: apps that differ in them share one manager (e.g. one with a key).
INGRESS_SETTINGS = frozenset({"api_key", "max_upload_mb"})


class ManagerBusy(RuntimeError):
    """A deploy changed the settings of a manager whose jobs still run: they are not swapped under them."""


def manager_with(settings: Settings, retire_wait_s: float = 30.0):
    """The cluster's one TrainingManager, running with `settings`.

    The manager is detached: it outlives a redeploy, with the settings of its first start.
    A deploy that changes them replaces it while no job runs (queued jobs wait in the
    registry, and the new manager starts them); while one runs, the deploy is refused
    with a message that says how to apply them.
    """
    manager = get_or_create_manager(settings)
    running = ray.get(manager.current_settings.remote())
    changed = settings.changed_from(running, ignore=INGRESS_SETTINGS)
    if not changed:
        return manager
    if not ray.get(manager.is_idle.remote()):
        raise ManagerBusy(f"{', '.join(changed)} changed, but the training manager has jobs running with the "
                          "earlier settings; wait for them to end (or stop them) and deploy again")
    ray.kill(manager, no_restart=True)
    deadline = time.monotonic() + retire_wait_s
    while time.monotonic() < deadline:  # the name is free once the old actor is gone
        try:
            ray.get_actor(settings.manager_name, namespace=RAY_NAMESPACE)
        except ValueError:
            break
        time.sleep(0.2)
    return get_or_create_manager(settings)


def get_or_create_manager(settings: Settings):
    """The cluster's one TrainingManager, created on first use."""
    return (
        ray.remote(TrainingManager)
        .options(
            name=settings.manager_name,
            namespace=RAY_NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            num_cpus=0,
            # On the head node, always: the registry file it owns must outlive worker-node churn.
            resources={HEAD_NODE_RESOURCE: 0.001},
            runtime_env={"env_vars": RUNNER_ENV},
        )
        .remote(settings)
    )
