"""What the service says about the Ray cluster under it: its resources, its dashboard, a job's page there."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

# The one command that prints the token the Ray dashboard asks for (Ray's token authentication is on).
DASHBOARD_TOKEN_COMMAND = "ray get-auth-token"


class ClusterInfo(BaseModel):
    """Body of GET /api/cluster."""

    resources: dict[str, float] = Field(description="Every node's resources added up (CPU, GPU, memory, ...).")
    available: dict[str, float] = Field(description="What is free of them now.")
    dashboard_url: Optional[str] = Field(None, description="The Ray dashboard, when it runs.")
    dashboard_token_command: str = Field(
        DASHBOARD_TOKEN_COMMAND, description="Run on a machine of the cluster: prints the token the dashboard "
        "asks for (its token authentication is on).")


class DashboardLink(BaseModel):
    """Body of GET /api/jobs/{job_id}/dashboard."""

    job_id: str
    url: Optional[str] = Field(None, description="The dashboard's page of the job's run (the task named by the job "
                                                 "id); its front page while the run has not started; null without "
                                                 "a dashboard.")
    found: bool = Field(description="Whether the url is the run's own page.")
