"""The benchmark scripts that measure the service run in their quick mode and print well-formed JSON figures
(no timing asserted).

They measure this session's service, as an operator would measure a running deployment
(--url, --home, --dashboard), rather than each starting a Ray instance and a Serve app of
its own: the session's service is already up. They leave it as they found it: their jobs
ended, their models deleted. The scripts that measure no service run in tests/bench/.
"""

from __future__ import annotations

import pytest
from support import Service, bench_scripts, run_bench_quick

from forge.schemas import ACTIVE_STATUSES

pytestmark = pytest.mark.integration

SCRIPTS = bench_scripts(measuring_the_service=True)


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_bench_script_quick_mode_prints_json_figures(script, service: Service):
    models_before = service.client.models()
    # The script inherits this environment, RAY_AUTH_MODE included (ray.init set it where the
    # session's cluster uses token authentication): serving.py's state API calls then carry the token.
    run_bench_quick(script, "--url", service.url, "--home", str(service.home), "--dashboard", service.dashboard_url)
    # The session's service, shared with every other test, is left as it was found.
    assert service.client.models() == models_before
    assert service.client.status()["status"] not in ACTIVE_STATUSES
