"""Shared by the bench scripts: the machine's description and docs/benchmarks.md's tables.

Each script owns one table between `<!-- bench/<script> -->` markers; `--write`
replaces it (or appends it the first time) and leaves the rest of the page alone.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "benchmarks.md"


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
