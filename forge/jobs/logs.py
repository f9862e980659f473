"""Reading a job's worker logs (written by forge.training.worker_log): the last lines of one rank.

Read straight from storage by whoever asks (the ingress, in a thread), never through
the manager: a log can be large, and only its end is read, from the back.
"""

from __future__ import annotations

import re

import pyarrow.fs as pafs

from forge.errors import NotFound
from forge.job_schemas import JobLogs
from forge.storage import Storage, worker_log_name

MAX_TAIL = 5000
_BLOCK = 64 * 1024
# A line longer than this is cut (a tensor printed whole, a data row).
MAX_LINE_CHARS = 4000
_RANK_FILE = re.compile(r"^rank-(\d+)\.log$")


def log_ranks(storage: Storage, job_id: str) -> list[int]:
    """The ranks that left a log for the job, in order."""
    selector = pafs.FileSelector(storage.job_logs_dir(job_id), allow_not_found=True)
    found = (_RANK_FILE.match(info.base_name) for info in storage.fs.get_file_info(selector))
    return sorted(int(match[1]) for match in found if match)


def tail_lines(storage: Storage, path: str, count: int) -> tuple[list[str], bool]:
    """The last `count` lines of the file at `path`, and whether earlier lines exist.

    Read from the end a block at a time, so memory follows `count`, not the file's size.
    """
    with storage.fs.open_input_file(path) as stream:
        position = stream.size()
        data = b""
        while position > 0 and data.count(b"\n") <= count:
            start = max(0, position - _BLOCK)
            stream.seek(start)
            data = stream.read(position - start) + data
            position = start
    text = data.decode("utf-8", errors="replace")
    # A progress bar redraws its line with \r: keep what a terminal would show, its last drawing.
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    truncated = position > 0 or len(lines) > count
    if position > 0 and lines:
        lines = lines[1:]  # the first line read may be the end of a longer one
    lines = lines[-count:]
    return [line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [cut]" for line in lines], truncated


def read_job_log(storage: Storage, job_id: str, rank: int, tail: int) -> JobLogs:
    """The job's log of `rank`; a job whose workers never started (or left nothing) has no lines."""
    ranks = log_ranks(storage, job_id)
    if rank not in ranks:
        if ranks:
            raise NotFound(f"job {job_id!r} has no log of rank {rank}; its workers' ranks: "
                           f"{', '.join(map(str, ranks))}")
        return JobLogs(job_id=job_id, rank=rank, ranks=ranks, lines=[], truncated=False)
    lines, truncated = tail_lines(storage, f"{storage.job_logs_dir(job_id)}/{worker_log_name(rank)}", tail)
    return JobLogs(job_id=job_id, rank=rank, ranks=ranks, lines=lines, truncated=truncated)
