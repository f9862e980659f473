"""Shared by the bench scripts: their common options, the machine's description and docs/benchmarks.md's tables.

Each script owns one table between `<!-- bench/<script> -->` markers; `--write`
replaces it (or appends it the first time) and leaves the rest of the page alone.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "benchmarks.md"


def bench_arguments(quick_help: str) -> argparse.ArgumentParser:
    """--repeats, --quick (what this script's smoke test runs) and --write; scripts add their own."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--write", action="store_true", help="record the figures in docs/benchmarks.md")
    return parser


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, no GPU"


def write_table(script: str, ours_label: str, baseline_label: str, rows: list[dict]) -> None:
    marker = f"<!-- bench/{script} -->"
    table = [marker, f"| figure | {ours_label} | {baseline_label} | ratio | goal | machine | date |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {r['figure']} | {r['ours']} | {r['baseline']} | {r['ratio']} | {r['goal']} | {r['machine']} | "
              f"{r['date']} |" for r in rows]
    table.append(marker)
    text = PAGE.read_text() if PAGE.exists() else "# Benchmarks\n\n"
    if marker in text:
        head, _, rest = text.partition(marker)
        _, _, tail = rest.partition(marker)
        text = head + "\n".join(table) + tail
    else:
        text += "\n" + "\n".join(table) + "\n"
    PAGE.write_text(text)
