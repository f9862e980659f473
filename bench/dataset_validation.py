"""Benchmark: dataset validation throughput and memory, against a bare json.loads loop, in one run.

Generated JSONL of growing size (10 MB, 100 MB, 1 GB; 1 and 4 MB with --quick) is
validated by `forge.datasets.validate_jsonl` (what every upload goes through) and
read by the floor any validator has to pay: a plain loop calling json.loads on each
line. Each run is a fresh process, the two alternating; figures are medians.
Constant MB/s across sizes means time linear in size; the goal for peak RSS is
under 300 MB at every size.

    .venv/bin/python bench/dataset_validation.py [--repeats 3] [--quick] [--write]
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _table import REPO, bench_arguments, machine, write_table

WORDS = ("the a river model answer question green boat island harbour apple engine teacher student "
         "letter window garden bridge mountain picture kitchen computer message story").split()


def generate(path: Path, megabytes: float) -> None:
    """Text-generation pairs with varied lengths, written in 1 MB blocks."""
    rng = random.Random(0)
    target = megabytes * 1024 * 1024
    with path.open("w") as out:
        written = 0
        while written < target:
            block = []
            for _ in range(2000):
                row = {"input": " ".join(rng.choices(WORDS, k=rng.randint(5, 40))) + "?",
                       "output": " ".join(rng.choices(WORDS, k=rng.randint(5, 80))) + "."}
                block.append(json.dumps(row))
            text = "\n".join(block) + "\n"
            out.write(text)
            written += len(text)


def child(kind: str, path: str) -> None:
    import resource

    from forge.datasets import validate_jsonl  # imported before the clock starts, in both kinds

    started = time.perf_counter()
    if kind == "ours":
        report = validate_jsonl(Path(path), None)
        assert report.valid, report.errors[:3]
        rows = report.num_examples
    else:
        rows = 0
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.strip() and isinstance(json.loads(line), dict):
                    rows += 1
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": rows,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(kind: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True,
                          cwd=REPO, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = bench_arguments("small files, one repetition (smoke test)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"))
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    sizes, repeats = ([1, 4], 1) if args.quick else ([10, 100, 1024], args.repeats)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for megabytes in sizes:
            path = Path(folder) / f"{megabytes}mb.jsonl"
            generate(path, megabytes)
            size_mb = path.stat().st_size / 1024 / 1024
            results: dict[str, list[dict]] = {"ours": [], "bare": []}
            for _ in range(repeats):
                for kind in results:  # alternate, so drift on a shared machine hits both alike
                    results[kind].append(run(kind, path))
            assert results["ours"][0]["rows"] == results["bare"][0]["rows"]
            for figure, key, goal in (
                ("MB/s", "throughput", "same MB/s at every size (linear time)"),
                ("peak RSS MB", "peak_rss_mb", "< 300 MB"),
            ):
                def value(result: dict) -> float:
                    return size_mb / result["seconds"] if key == "throughput" else result["peak_rss_mb"]

                ours = statistics.median(value(r) for r in results["ours"])
                baseline = statistics.median(value(r) for r in results["bare"])
                row = {"figure": f"validation {figure}, {megabytes} MB", "ours": round(ours, 2),
                       "baseline": round(baseline, 2), "ratio": round(ours / baseline, 3), "goal": goal,
                       "repeats": repeats, "machine": machine(), "date": date.today().isoformat()}
                print(json.dumps(row))
                rows.append(row)
            path.unlink()
    if args.write:
        write_table("dataset_validation.py", "validate_jsonl", "json.loads loop", rows)


if __name__ == "__main__":
    main()
