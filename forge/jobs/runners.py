"""One Ray actor per job that runs the job's TorchTrainer.fit(), and the pool that hands them out.

`fit()` blocks, so it must not run on the manager's event loop. A dedicated
runner actor (0 CPUs) gives a clean hard stop: `ray.kill(runner)` takes the
Train controller and workers with it, though not the placement groups Train
has not handed to its cleaner yet: one still pending, or one the controller
creates while it exits (forge/jobs/placement_groups.py removes those). The manager kills the
runner after a normal finish too, which avoids Train's leaked-controller trap.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import ray

from forge.jobs.placement_groups import release_placement_groups
from forge.settings import RAY_NAMESPACE, Settings

# Light: the training stack (torch, transformers, PEFT, TRL: ~5 s of imports) loads in the
# workers, when these entry points run, never in the runner that hands them to Ray Train.
from forge.training.entry import train_worker_huggingface, train_worker_unsloth
from forge.training.spec import JobSpec

if TYPE_CHECKING:
    from forge.jobs.tracker import ActiveJob

log = logging.getLogger(__name__)

RUNNER_ENV = {
    # Train V2 patches print() into the logger; TRL's dataset fingerprinting then
    # dumps pages of bytecode into the worker logs.
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    # ray.train.report (one per checkpoint) waits for the controller's next poll:
    # 2 s by default, per checkpoint.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
}


def huggingface_runner_env(cluster_address: str) -> dict[str, Any]:
    """The huggingface provider's runner environment (a spare runner's); Train's controller and workers inherit it.

    RAY_ADDRESS names this cluster (its GCS address) to everything under the runner. Ray
    Train's placement-group cleaner asks Ray's state API whether the controller still lives
    without naming a cluster; on a machine running another Ray instance the state API
    refuses to guess, the cleaner's watch dies, and a killed run's placement group (its
    CPUs or GPUs) is never given back.
    """
    return {"env_vars": {**RUNNER_ENV, "RAY_ADDRESS": cluster_address}}


def per_worker(use_gpu: bool, extra: dict[str, float]) -> dict[str, float]:
    """What each Train worker reserves: Ray Train's default (1 CPU, 1 GPU with use_gpu) plus `extra`."""
    return {"CPU": 1, **({"GPU": 1} if use_gpu else {}), **extra}


def worker_resources(use_gpu: bool, extra: dict[str, float]) -> Optional[dict[str, float]]:
    """ScalingConfig's resources_per_worker: None leaves Ray Train's default when nothing is `extra`."""
    return per_worker(use_gpu, extra) if extra else None


def resources_needed(spec: JobSpec) -> dict[str, float]:
    """What the job's worker group reserves in all (every worker's share, as Ray Train asks for it)."""
    each = per_worker(spec.options.use_gpu, spec.worker_resources)
    return {name: amount * spec.request.num_workers for name, amount in each.items()}


def shortfall(needed: dict[str, float], cluster: dict[str, float]) -> dict[str, float]:
    """What the cluster (`ray.cluster_resources()`: every node up, busy or not) lacks of `needed`."""
    return {name: amount - cluster.get(name, 0) for name, amount in needed.items() if cluster.get(name, 0) < amount}


def waiting_reason(needed: dict[str, float], cluster: dict[str, float]) -> str:
    """Why a job's workers cannot start yet, in words."""
    missing = shortfall(needed, cluster)
    wants = ", ".join(f"{amount:g} {name}" for name, amount in needed.items())
    if missing:
        has = ", ".join(f"{cluster.get(name, 0):g} {name}" for name in missing)
        return (f"the worker group needs {wants}; the nodes up have {has} (an autoscaler may still be "
                "adding nodes)")
    return f"the worker group needs {wants}; the cluster has them, but other work holds them"


@ray.remote(num_cpus=0, max_restarts=0)
class JobRunner:
    def warm(self) -> None:
        """Import what run() needs (Ray Train, torch: about 2 s) before any job asks for it.

        The manager keeps one runner started and warmed ahead (a spare), so a job's
        start does not wait for a new process and these imports.
        """
        from ray.train.torch import TorchTrainer  # noqa: F401

    def run(self, job: JobSpec) -> dict[str, Any]:
        from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        from forge.builtin import ensure_builtin, is_builtin
        from forge.storage import open_filesystem

        if is_builtin(job.model_source):
            # Built here, before any worker starts: transformers writes no weights from a
            # process whose torch.distributed rank is not 0, so a worker must never build it.
            ensure_builtin(job.model_source, Path(job.builtin_dir))
        # An unsloth job's runner runs in the unsloth venv (its runtime_env); its entry imports unsloth first.
        train_loop = train_worker_unsloth if job.request.provider == "unsloth" else train_worker_huggingface
        # Checkpoints go to FORGE_STORAGE/runs (a path or an object-store URI), through
        # the same pyarrow filesystem the rest of the service uses for it.
        runs_filesystem, runs_path = open_filesystem(job.runs_dir)
        trainer = TorchTrainer(
            train_loop,
            # The spec rides in a dict: Ray Train's run record expects a mapping (the dashboard shows it).
            train_loop_config={"spec": job},
            scaling_config=ScalingConfig(
                num_workers=job.request.num_workers, use_gpu=job.options.use_gpu,
                resources_per_worker=worker_resources(job.options.use_gpu, job.worker_resources),
            ),
            run_config=RunConfig(
                # The run name is the job id: Ray Train continues a run of the same
                # name from its latest checkpoint, which is what resuming a job means.
                name=job.job_id,
                storage_path=runs_path,
                storage_filesystem=runs_filesystem,
                checkpoint_config=CheckpointConfig(num_to_keep=job.request.save_total_limit),
                # A crashed worker restarts the whole group, which resumes from the latest checkpoint.
                failure_config=FailureConfig(max_failures=job.max_failures),
            ),
        )
        result = trainer.fit()
        if result.error is not None:
            raise result.error
        return result.return_value or {}


class RunnerPool:
    """Hands each job a runner in its provider's environment, keeps one spare warm, kills runners."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._huggingface_env = huggingface_runner_env(ray.get_runtime_context().gcs_address)
        # A JobRunner started and warmed ahead for the next huggingface job, with its warm-up call.
        self._spare: Optional[tuple[Any, Any]] = None
        # Killed runners whose run's leftover placement groups are being removed, by actor id.
        self._releasing: dict[ray.ActorID, asyncio.Task] = {}

    async def runner_for(self, job: ActiveJob) -> Any:
        """The job's runner (also set on `job.runner` at once, so a hard stop can kill it while it warms up)."""
        assert job.spec is not None
        runtime_env = self.runtime_env(job.spec)
        if self._spare is not None and runtime_env == self._huggingface_env:
            (job.runner, warming), self._spare = self._spare, None
            try:
                await warming
                return job.runner
            except ray.exceptions.RayActorError:
                if job.stop_requested:  # killed by a hard stop while it warmed up
                    raise
                log.warning("the spare job runner was lost; starting a new one for %s", job.record.job_id)
        job.runner = JobRunner.options(
            name=f"runner-{job.record.job_id}", namespace=RAY_NAMESPACE, runtime_env=runtime_env
        ).remote()
        return job.runner

    def keep_a_spare(self) -> None:
        """Start a runner for the next job now, while nothing waits for it (after a job, not during one)."""
        if self.settings.spare_runner and self._spare is None:
            # Named for its manager (the job id is not known yet): several services may share a cluster.
            name = f"{self.settings.manager_name}-runner-{secrets.token_hex(4)}"
            runner = JobRunner.options(name=name, namespace=RAY_NAMESPACE, runtime_env=self._huggingface_env).remote()
            self._spare = (runner, runner.warm.remote())

    def runtime_env(self, spec: JobSpec) -> dict[str, Any]:
        """The runner's environment; Ray Train's controller and workers inherit it."""
        if spec.request.provider == "unsloth":
            return {**self._huggingface_env, "py_executable": str(self.settings.unsloth_python)}
        return dict(self._huggingface_env)

    def kill(self, runner: Any) -> None:
        """End a runner and the Train run under it, for good (no actor restart), placement groups included.

        Killing the runner ends its Train controller and workers, but not the worker-group
        placement groups Train's cleaner does not know of: those are removed once the run is dead.
        """
        if runner is None:
            return
        ray.kill(runner, no_restart=True)
        runner_id = runner._actor_id
        if runner_id not in self._releasing:  # a job's runner is killed at its stop and again at its end
            release = asyncio.get_running_loop().create_task(release_placement_groups(runner_id))
            self._releasing[runner_id] = release
            release.add_done_callback(lambda _: self._releasing.pop(runner_id, None))
