"""A benchmark script measures a service that is already running, as an operator measures a deployment
(--url, --home, --dashboard), and leaves it as it found it.

uploads.py stands for the scripts that measure the service: they share that path
(bench/_service.py: the REST calls, the state API with the cluster's token, the clean-up).
Every script's quick mode with a service of its own is tests/bench/test_bench_scripts.py.
"""

from __future__ import annotations

import pytest
from support import REPO, Service, measures_the_service, run_bench_quick

from forge.schemas import ACTIVE_STATUSES

pytestmark = pytest.mark.integration

SCRIPT = REPO / "bench" / "uploads.py"


def test_a_script_measures_the_running_service_and_leaves_it_as_it_found_it(service: Service):
    assert measures_the_service(SCRIPT)
    models_before = service.client.models()
    datasets_before = {d["filename"] for d in service.get("/api/datasets").json()["datasets"]}
    # The script inherits this environment, RAY_AUTH_MODE included (ray.init set it where the
    # session's cluster uses token authentication): its state API calls then carry the token.
    figures = run_bench_quick(SCRIPT, "--url", service.url, "--home", str(service.home),
                              "--dashboard", service.dashboard_url)
    # It measured this service: in its quick mode there, files the session's upload limits allow.
    assert all("1.5 MB" in figure["figure"] for figure in figures), figures
    # Its uploads stay, as any upload does; nothing else changed.
    datasets_after = {d["filename"] for d in service.get("/api/datasets").json()["datasets"]}
    assert datasets_after > datasets_before
    assert service.client.models() == models_before
    assert service.client.status()["status"] not in ACTIVE_STATUSES
