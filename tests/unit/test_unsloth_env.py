"""The unsloth probe's kept answer: reused while the environment is unchanged, never kept for a failure.

A real probe imports unsloth for about 9 s, and whether it imports is not what these tests
are about, so the environment here is a venv layout whose interpreter is a shell script
standing in for one: it answers as the probe's import line would, and counts its runs.
(tests/unit/test_catalog.py probes real interpreters.)
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from forge.unsloth_env import probe_unsloth

IMPORTS = 'echo "2026.10.9 1.15.0 5.17.0 False"'
FAILS = "echo \"ModuleNotFoundError: No module named 'unsloth'\" >&2; exit 1"


def make_environment(root: Path, answer: str) -> Path:
    (root / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    python = root / "bin" / "python"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\necho run >> "{root}/runs"\n{answer}\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return python


def runs(root: Path) -> int:
    return len((root / "runs").read_text().splitlines()) if (root / "runs").exists() else 0


def test_an_answer_is_kept_until_a_package_is_added(tmp_path: Path):
    python = make_environment(tmp_path / "venv", IMPORTS)
    first = asyncio.run(probe_unsloth(python))
    assert first.available and "unsloth 2026.10.9" in first.detail
    assert runs(tmp_path / "venv") == 1

    assert asyncio.run(probe_unsloth(python)) == first
    assert runs(tmp_path / "venv") == 1  # answered from what the first probe kept

    (tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "newly_installed").mkdir()
    assert asyncio.run(probe_unsloth(python)) == first
    assert runs(tmp_path / "venv") == 2  # the environment changed: asked again


def test_a_failure_is_never_kept(tmp_path: Path):
    python = make_environment(tmp_path / "venv", FAILS)
    for expected_runs in (1, 2):
        status = asyncio.run(probe_unsloth(python))
        assert status.available is False
        assert status.detail == "unsloth does not import: ModuleNotFoundError: No module named 'unsloth'"
        assert runs(tmp_path / "venv") == expected_runs
    assert not (tmp_path / "venv" / "forge-unsloth-probe.json").exists()


def test_a_kept_answer_from_another_interpreter_is_not_used(tmp_path: Path):
    python = make_environment(tmp_path / "venv", IMPORTS)
    asyncio.run(probe_unsloth(python))
    other = tmp_path / "venv" / "bin" / "python3"
    other.symlink_to(python)
    asyncio.run(probe_unsloth(other))
    assert runs(tmp_path / "venv") == 2
