"""Each benchmark script runs in its quick mode and prints well-formed JSON figures (no timing asserted).

The scripts that measure the service (they reach it through bench/_service.py) measure
this session's, as an operator would measure a running deployment (--url, --home,
--dashboard), rather than each starting a Ray instance and a Serve app of its own: the
session's service is already up. They leave it as they found it: their jobs ended,
their models deleted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

from forge.schemas import ACTIVE_STATUSES

pytestmark = pytest.mark.integration

# Modules starting with "_" are shared helpers, not benchmarks.
SCRIPTS = sorted(s for s in (REPO / "bench").glob("*.py") if not s.name.startswith("_"))


def measures_the_service(script: Path) -> bool:
    return "from _service import" in script.read_text()


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_bench_script_quick_mode_prints_json_figures(script: Path, request: pytest.FixtureRequest):
    command = [sys.executable, str(script), "--quick"]
    service = None
    if measures_the_service(script):
        # Asked for here, not as a parameter: the other scripts need no service, and run without one.
        service = request.getfixturevalue("service")
        # The script inherits this environment, RAY_AUTH_MODE included (ray.init set it where the
        # session's cluster uses token authentication): serving.py's state API calls then carry the token.
        command += ["--url", service.url, "--home", str(service.home), "--dashboard", service.dashboard_url]
        models_before = service.client.models()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    if service is not None:  # the session's service, shared with every other test, is left as it was found
        assert service.client.models() == models_before
        assert service.client.status()["status"] not in ACTIVE_STATUSES
    figures = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert figures
    for figure in figures:
        assert {"figure", "ours", "baseline", "ratio", "goal", "machine", "date"} <= set(figure)
        assert figure["ours"] > 0 and figure["baseline"] > 0
        # The ratio is rounded to 3 decimals: a small ratio (0.041 for 0.0415) is off by up to 0.0005.
        assert figure["ratio"] == pytest.approx(figure["ours"] / figure["baseline"], rel=0.01, abs=0.001)
