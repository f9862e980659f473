"""What `make serve` and the README tell a new user about the console and the Ray dashboard's token."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from forge.cluster_schemas import DASHBOARD_TOKEN_COMMAND

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_serve_prints_the_console_the_dashboard_and_how_to_get_its_token():
    # -n: print what `make serve` runs (its echo lines too) without running anything.
    printed = subprocess.run(["make", "-n", "serve"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "http://localhost:8000/" in printed
    assert "http://127.0.0.1:8265" in printed and f".venv/bin/{DASHBOARD_TOKEN_COMMAND}" in printed


def test_the_readme_says_the_same():
    readme = (REPO / "README.md").read_text()
    assert "http://127.0.0.1:8265" in readme and f".venv/bin/{DASHBOARD_TOKEN_COMMAND}" in readme
    assert "## Console" in readme and "(docs/console-job.png)" in readme and (REPO / "docs" / "console-job.png").is_file()
