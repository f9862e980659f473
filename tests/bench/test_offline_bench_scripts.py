"""The benchmark scripts that measure the libraries alone (no service) run in their quick mode and print
well-formed JSON figures (no timing asserted).

Here, not with the integration tests, so that they run beside them on the suite's second
worker; the scripts that measure the service are tests/integration/test_bench_scripts.py.
"""

from __future__ import annotations

import pytest
from support import bench_scripts, run_bench_quick

SCRIPTS = bench_scripts(measuring_the_service=False)


def test_some_scripts_measure_no_service():
    assert {s.name for s in SCRIPTS} >= {"providers.py", "dataset_validation.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_bench_script_quick_mode_prints_json_figures(script):
    run_bench_quick(script)
