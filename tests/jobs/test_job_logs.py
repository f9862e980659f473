"""A job's worker logs: what a worker's output capture keeps, and how the logs route reads its end.

The capture runs in a child Python process (it redirects the process's own file
descriptors 1 and 2, which pytest also captures); the reading runs on a real local storage.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from forge.errors import NotFound
from forge.jobs.logs import MAX_LINE_CHARS, read_job_log, tail_lines
from forge.storage import Storage, worker_log_name

WORKER = textwrap.dedent("""
    import logging, os, sys
    from pathlib import Path
    from forge.training.worker_log import captured_output

    # A logger bound to stderr before the capture starts (as transformers' is, at import).
    logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(message)s")
    log_dir, attempt = sys.argv[1], sys.argv[2]
    with captured_output(log_dir, rank=1, scratch=Path(log_dir) / "scratch"):
        print(f"python print, attempt {attempt}")
        logging.warning("a logger's warning")
        os.write(2, b"raw bytes on fd 2\\n")
        os.system("echo from a child process")
        if attempt == "2":
            raise ValueError("bad row 3")
    print("after the capture")
""")


def run_worker(log_dir: Path, attempt: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WORKER, str(log_dir), str(attempt)],
                          capture_output=True, text=True, timeout=60)


def test_a_workers_output_is_kept_and_still_passed_on_and_a_failure_leaves_its_traceback(tmp_path: Path):
    first = run_worker(tmp_path, 1)
    assert first.returncode == 0, first.stderr
    second = run_worker(tmp_path, 2)
    assert second.returncode != 0

    log = (tmp_path / worker_log_name(1)).read_text()
    # Everything the worker wrote, however it wrote it, from both runs (a resumed worker appends).
    for line in ("python print, attempt 1", "python print, attempt 2", "WARNING a logger's warning",
                 "raw bytes on fd 2", "from a child process"):
        assert line in log
    assert log.count("===== worker rank 1 started at") == 2
    # The failed run's traceback, with the exception, at the end.
    assert "Traceback (most recent call last)" in log
    assert log.rstrip().endswith("ValueError: bad row 3")
    # Output after the capture is not kept; the capture passed everything on (to Ray's log files).
    assert "after the capture" not in log
    assert "python print, attempt 1" in first.stdout and "after the capture" in first.stdout
    assert "raw bytes on fd 2" in first.stderr and "a logger's warning" in first.stderr
    assert "ValueError: bad row 3" in second.stderr


def write_log(storage: Storage, job_id: str, rank: int, lines: list[str]) -> Path:
    folder = Path(storage.job_logs_dir(job_id))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / worker_log_name(rank)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_the_tail_of_a_long_log_is_read_from_its_end(storage: Storage):
    # Longer than the reader's block, so several blocks are read back to front.
    lines = [f"step {i} loss {i * 0.001:.4f} " + "x" * 50 for i in range(20_000)]
    path = write_log(storage, "train_a", 0, lines)
    tail, truncated = tail_lines(storage, str(path), 1500)
    assert tail == lines[-1500:] and truncated
    whole, truncated = tail_lines(storage, str(path), 20_000)
    assert whole == lines and not truncated


def test_a_short_log_is_whole_a_redrawn_line_shows_its_last_drawing_and_an_overlong_line_is_cut(storage: Storage):
    path = write_log(storage, "train_a", 0, ["one", "10%|#  |\r50%|### |\r100%|#####|", "=" * 50_000, "four"])
    lines, truncated = tail_lines(storage, str(path), 200)
    assert not truncated
    assert lines[:2] == ["one", "100%|#####|"] and lines[3] == "four"
    assert len(lines[2]) == MAX_LINE_CHARS + len(" [cut]") and lines[2].endswith(" [cut]")


def test_a_jobs_logs_name_their_ranks_and_an_unknown_rank_is_404(storage: Storage):
    write_log(storage, "train_b", 0, ["rank zero"])
    write_log(storage, "train_b", 1, ["rank one"])
    logs = read_job_log(storage, "train_b", 1, 10)
    assert (logs.ranks, logs.lines, logs.truncated) == ([0, 1], ["rank one"], False)
    with pytest.raises(NotFound, match="ranks: 0, 1"):
        read_job_log(storage, "train_b", 2, 10)
    # A job whose workers never started has no log yet: no lines, no error.
    empty = read_job_log(storage, "train_c", 0, 10)
    assert (empty.ranks, empty.lines) == ([], [])
