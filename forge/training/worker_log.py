"""A training worker's output, kept with the job's files: `GET /api/jobs/{job_id}/logs` reads it.

Ray writes each worker's stdout and stderr into its session's log folder, which a
user rarely finds and which goes with the Ray session. While a job's worker runs,
`captured_output` copies both streams, at the file-descriptor level (so output of
C extensions and of loggers bound to the original streams is caught too), into
`rank-<rank>.log` in the job's log folder, and still passes them on to Ray.

On a local or mounted storage the file is written in place, so a user reads it as
it grows; on an object store it is written locally and copied up when the worker
ends (a killed worker's log then stays on its node).
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from forge.storage import is_uri, open_filesystem, worker_log_name

_CHUNK = 64 * 1024
# How long the copying threads may take to drain after the worker's function ends. A child
# process that inherited the streams (a data loader) can keep them open past that.
_DRAIN_S = 5.0


class _Tee:
    """Copies what is written to one file descriptor into the log, and on to where it went before."""

    def __init__(self, fd: int, log: BinaryIO, lock: threading.Lock) -> None:
        self.fd = fd
        self.saved = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self._read_end = read_end
        self._log = log
        self._lock = lock
        self._thread = threading.Thread(target=self._copy, name=f"forge-log-fd{fd}", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        while chunk := os.read(self._read_end, _CHUNK):
            try:
                os.write(self.saved, chunk)
            except OSError:
                pass
            with self._lock:
                self._log.write(chunk)
                self._log.flush()
        os.close(self._read_end)

    def restore(self) -> None:
        """Point the descriptor back where it was; the pipe closes and the copy drains."""
        os.dup2(self.saved, self.fd)
        self._thread.join(timeout=_DRAIN_S)
        os.close(self.saved)


@contextmanager
def captured_output(log_dir: str, rank: int, scratch: Path) -> Iterator[None]:
    """Copy this process's stdout and stderr into `log_dir/rank-<rank>.log` (a path or a storage URI).

    A restarted or resumed worker group appends to the same file after a header line.
    An exception leaving the block is written there with its traceback first.
    """
    remote = is_uri(log_dir)
    local = scratch / worker_log_name(rank) if remote else Path(log_dir) / worker_log_name(rank)
    local.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    with local.open("ab") as log:
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        log.write(f"===== worker rank {rank} started at {started} (pid {os.getpid()}) =====\n".encode())
        log.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        tees = [_Tee(1, log, lock), _Tee(2, log, lock)]
        failure = None
        try:
            yield
        except BaseException:
            failure = traceback.format_exc()
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for tee in tees:
                tee.restore()
            if failure is not None:  # last, once both streams are drained: the log ends with it
                log.write(failure.encode())
                sys.stderr.write(failure)
                sys.stderr.flush()
    if remote:
        _append_to_storage(local, log_dir, rank)


def _append_to_storage(local: Path, log_dir: str, rank: int) -> None:
    """Object stores cannot append: the stored log is rewritten as what it held plus this run's."""
    filesystem, root = open_filesystem(log_dir)
    target = f"{root}/{worker_log_name(rank)}"
    filesystem.create_dir(root, recursive=True)
    previous = b""
    try:
        with filesystem.open_input_stream(target) as stored:
            previous = stored.read()
    except (FileNotFoundError, OSError):
        pass
    with filesystem.open_output_stream(target) as out:
        out.write(previous)
        out.write(local.read_bytes())
