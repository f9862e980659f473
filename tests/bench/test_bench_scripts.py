"""Each benchmark script runs in its quick mode and prints well-formed JSON figures (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Modules starting with "_" are shared helpers, not benchmarks.
SCRIPTS = sorted(s for s in (REPO / "bench").glob("*.py") if not s.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_bench_script_quick_mode_prints_json_figures(script: Path):
    done = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, cwd=REPO,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert figures
    for figure in figures:
        assert {"figure", "ours", "baseline", "ratio", "goal", "machine", "date"} <= set(figure)
        assert figure["ours"] > 0 and figure["baseline"] > 0
        # The ratio is rounded to 3 decimals: a small ratio (0.041 for 0.0415) is off by up to 0.0005.
        assert figure["ratio"] == pytest.approx(figure["ours"] / figure["baseline"], rel=0.01, abs=0.001)
