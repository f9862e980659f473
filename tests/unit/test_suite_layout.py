"""`make test` runs every wing: pytest's testpaths (listed in order, integration last) name each tests/ folder."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_testpaths_name_every_folder_of_tests_and_run_integration_last():
    testpaths = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    folders = {f"tests/{d.name}" for d in (REPO / "tests").iterdir() if d.is_dir() and any(d.glob("test_*.py"))}
    assert set(testpaths) == folders
    assert testpaths[-1] == "tests/integration"
