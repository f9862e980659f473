"""The placement groups a killed run leaves behind, found by the actor that created them, and removed.

Ray Train V2 hands its worker group's placement group to its PlacementGroupCleaner (which
removes it when the controller dies) only once the group is ready
(`PlacementGroupCleanerCallback.after_worker_group_start`, called at the end of
`WorkerGroup._start_impl`). A group still PENDING when the runner is killed (its workers
wait for a node the cluster lacks, e.g. a GPU job on CPU-only nodes) is removed by no one:
Ray removes a placement group when its creator actor and its creator's job are both dead,
and the job (the service's) lives on. On an autoscaling cluster the orphan would take the
node it waited for when that node comes.

Ray's public tables (`ray.util.placement_group_table()`, the state API) do not say who created
a group; the GCS's own records do (`creator_actor_id`). They are read here through this
worker's connection to its cluster, so no address has to be guessed when another Ray instance
runs on the machine. A run's groups are those created by an actor its runner created (Ray
Train's controller): no other job's group, and no group of the service's own, matches.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Optional

import ray
from ray.core.generated.gcs_pb2 import ActorTableData, PlacementGroupTableData
from ray.util.placement_group import PlacementGroup, remove_placement_group

log = logging.getLogger(__name__)

# How long a release waits for the killed run's actors to die (about 1 s in practice).
DEATH_WAIT_S = 30.0
POLL_S = 0.2
# How long a release keeps looking after they are recorded dead. Ray records a killed actor dead at
# once but gives its process a graceful exit of up to 5 s (RAY_kill_worker_timeout_milliseconds)
# before SIGKILL; meanwhile Train's controller may see its workers gone and start a new worker
# group, with a new placement group (seen: one created 0.3 s after its controller was recorded dead).
SETTLE_S = 8.0


@dataclass(frozen=True)
class RunActors:
    """A runner and the actors it created, as the GCS records them."""

    runner: ActorTableData
    created: list[ActorTableData]

    def all_dead(self) -> bool:
        return all(actor.state == ActorTableData.DEAD for actor in (self.runner, *self.created))


def _accessor():
    from ray._private.state import state

    return state._connect_and_get_accessor()


def run_actors(runner_id: ray.ActorID) -> Optional[RunActors]:
    """The runner's record and those of the actors it owns (its Train controller); None for an unknown runner."""
    raw = _accessor().get_actor_info(runner_id)
    if raw is None:
        return None
    runner = ActorTableData.FromString(raw)
    worker = runner.address.worker_id
    if not worker:  # never started: it created nothing
        return RunActors(runner, [])
    rows = map(ActorTableData.FromString, _accessor().get_actor_table(ray.JobID(runner.job_id), None))
    return RunActors(runner, [actor for actor in rows if actor.owner_address.worker_id == worker])


def groups_created_by(actors: list[ActorTableData]) -> list[PlacementGroupTableData]:
    """The placement groups these actors created that are still there (pending, created or rescheduling)."""
    creators = {actor.actor_id for actor in actors}
    rows = map(PlacementGroupTableData.FromString, _accessor().get_placement_group_table())
    return [group for group in rows if group.creator_actor_id in creators
            and group.state != PlacementGroupTableData.REMOVED and not group.is_detached]


async def release_placement_groups(runner_id: ray.ActorID, death_wait_s: float = DEATH_WAIT_S) -> list[str]:
    """Remove the placement groups left by the killed runner's run: their ids (hex).

    Waits for the runner and the actors it created to be recorded dead (at most `death_wait_s`),
    then removes their groups, and any they still create while their processes exit (SETTLE_S).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + death_wait_s
    actors = await asyncio.to_thread(run_actors, runner_id)
    while actors is not None and not actors.all_dead() and loop.time() < deadline:
        await asyncio.sleep(POLL_S)
        actors = await asyncio.to_thread(run_actors, runner_id)
    if actors is None:
        return []
    if not actors.all_dead():
        log.warning("runner %s or its Train controller outlived its kill by %g s; removing its placement "
                    "groups anyway", runner_id.hex(), death_wait_s)
    removed: list[str] = []
    settled = loop.time() + SETTLE_S
    while True:
        for group in await asyncio.to_thread(groups_created_by, actors.created):
            if group.placement_group_id.hex() not in removed:
                remove_placement_group(PlacementGroup(ray.PlacementGroupID(group.placement_group_id)))
                removed.append(group.placement_group_id.hex())
        if loop.time() >= settled:
            break
        await asyncio.sleep(4 * POLL_S)
    if removed:
        log.info("removed the placement groups %s left by runner %s", removed, runner_id.hex())
    return removed
