"""Build the Serve application: `serve run deployments.app:app`.

`build_app` takes typed arguments (also usable as `serve run
deployments.app:build_app playground_max_replicas=4`), resolves the FORGE_*
settings once, and binds the Playground handle into the ingress.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from pydantic import BaseModel, Field, model_validator
from ray import serve

from deployments.api import ApiIngress
from deployments.playground import MAX_ONGOING_REQUESTS, Playground
from forge.settings import Settings


class AppArgs(BaseModel):
    playground_min_replicas: int = Field(1, ge=0)
    playground_max_replicas: int = Field(2, ge=1)
    playground_initial_replicas: Optional[int] = Field(
        None, ge=0, description="Playground replicas started with the app (default: playground_min_replicas, "
                                "at least 1, so the first request finds one warm; 0 starts none until one is asked).")
    playground_num_cpus: float = Field(0, ge=0, description="CPUs reserved per Playground replica.")
    playground_num_gpus: float = Field(0, ge=0, description="GPUs per Playground replica on a GPU cluster.")
    playground_resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources per Playground replica (pins them to nodes).")

    @model_validator(mode="after")
    def _replica_bounds(self) -> "AppArgs":
        if self.playground_min_replicas > self.playground_max_replicas:
            raise ValueError("playground_min_replicas must not exceed playground_max_replicas")
        initial = self.playground_initial_replicas
        if initial is not None and not self.playground_min_replicas <= initial <= self.playground_max_replicas:
            raise ValueError("playground_initial_replicas must lie between playground_min_replicas and "
                             "playground_max_replicas")
        return self


# The Playground's deployment options, here and only here (the deployment class is bare):
# `build_playground` overlays the replica counts and resources of AppArgs.
# A replica generates concurrent requests for the models of a base together, up to a batch of
# MAX_ROWS: it is busy, and another replica is worth starting, once about a batch is in flight.
PLAYGROUND_DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    "max_ongoing_requests": MAX_ONGOING_REQUESTS,
    "autoscaling_config": {"target_ongoing_requests": MAX_ONGOING_REQUESTS // 2, "upscale_delay_s": 5,
                           "downscale_delay_s": 60},
    "ray_actor_options": {},
}


def build_playground(args: AppArgs, settings: Settings) -> serve.Application:
    """The Playground: its deployment defaults with the replica counts and resources of `args`."""
    return Playground.options(**playground_options(args)).bind(settings)


def playground_options(args: AppArgs) -> dict[str, Any]:
    """The Playground's deployment options: PLAYGROUND_DEPLOYMENT_DEFAULTS with what `args` sets."""
    options = copy.deepcopy(PLAYGROUND_DEPLOYMENT_DEFAULTS)
    options["ray_actor_options"].update(num_cpus=args.playground_num_cpus, num_gpus=args.playground_num_gpus)
    if args.playground_resources:
        options["ray_actor_options"]["resources"] = args.playground_resources
    options["autoscaling_config"].update(
        min_replicas=args.playground_min_replicas,
        initial_replicas=(max(1, args.playground_min_replicas) if args.playground_initial_replicas is None
                          else args.playground_initial_replicas),
        max_replicas=args.playground_max_replicas,
    )
    return options


def build_app(args: AppArgs, settings: Optional[Settings] = None) -> serve.Application:
    settings = settings or Settings.from_env()
    return ApiIngress.bind(build_playground(args, settings), settings)


app = build_app(AppArgs())
