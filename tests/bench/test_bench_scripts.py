"""Every benchmark script runs in its quick mode, the way `make bench` runs it, and prints well-formed JSON
figures (no timing asserted).

The scripts that measure the service start one of their own (Ray on 2 CPUs, Serve's
HTTP proxy on a free loopback port, a temporary FORGE_HOME) and shut it down; the others
measure the libraries alone. Here, not with the integration tests, so that they run beside
them on the suite's second worker. A script measuring a service that is already running
(--url) is tests/integration/test_bench_on_a_running_service.py.
"""

from __future__ import annotations

import pytest
from support import bench_scripts, measures_the_service, run_bench_quick

SCRIPTS = bench_scripts()


def test_both_kinds_of_script_are_run():
    assert {s.name for s in SCRIPTS if measures_the_service(s)} >= {"serving.py", "inference.py", "training.py",
                                                                    "uploads.py"}
    assert {s.name for s in SCRIPTS if not measures_the_service(s)} >= {"providers.py", "dataset_validation.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_bench_script_quick_mode_prints_json_figures(script):
    run_bench_quick(script)
