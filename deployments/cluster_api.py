"""GET /api/cluster and GET /api/jobs/{job_id}/dashboard: the cluster, and a job's page in the Ray dashboard.

A mixin of the ingress. The dashboard's address comes from the cluster's own record
(the GCS key-value store), the job's run from Ray's state API: the manager runs each
job as a task named by the job id (forge/manager.py), which the dashboard shows at
/#/jobs/<ray job>/tasks/<task>.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import ray
from fastapi import APIRouter

from forge.cluster_schemas import ClusterInfo, DashboardLink

router = APIRouter()


def _dashboard_url() -> Optional[str]:
    from ray._private.services import get_webui_url_from_internal_kv

    try:
        address = get_webui_url_from_internal_kv()
    except Exception:  # no dashboard (ray start --include-dashboard=false): the console shows no link
        return None
    return f"http://{address}" if address and not address.startswith("http") else address


def find_run_task(job_id: str, dashboard_url: str) -> Optional[Any]:
    """The newest Ray task named `job_id` (a resumed job has one per start), or None.

    Asked of this cluster's dashboard by its address: without one, the state API looks for
    a Ray instance on the machine and refuses to choose where it finds several.
    """
    from ray.util.state import list_tasks

    tasks = list_tasks(address=dashboard_url, filters=[("name", "=", job_id)], detail=True,
                       raise_on_missing_output=False)
    return max(tasks, key=lambda task: task.start_time_ms or 0, default=None)


class ClusterRoutes:
    """Cluster routes; the ingress provides the manager."""

    manager: Any

    @router.get("/api/cluster", response_model=ClusterInfo)
    async def cluster(self) -> ClusterInfo:
        """The cluster's resources (all nodes), what is free, and where the Ray dashboard is."""
        resources, available, url = await asyncio.gather(
            asyncio.to_thread(ray.cluster_resources), asyncio.to_thread(ray.available_resources),
            asyncio.to_thread(_dashboard_url))
        return ClusterInfo(resources=resources, available=available, dashboard_url=url)

    @router.get("/api/jobs/{job_id}/dashboard", response_model=DashboardLink)
    async def job_dashboard(self, job_id: str) -> DashboardLink:
        """The Ray dashboard's page of the job's run (open it with the token `ray get-auth-token` prints)."""
        await self.manager.job_detail.remote(job_id)  # 404 for a job that does not exist
        url = await asyncio.to_thread(_dashboard_url)
        task = await asyncio.to_thread(find_run_task, job_id, url) if url else None
        if task is None:
            return DashboardLink(job_id=job_id, url=url, found=False)
        return DashboardLink(job_id=job_id, url=f"{url}/#/jobs/{task.job_id}/tasks/{task.task_id}", found=True)
