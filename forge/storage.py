"""Where every file of the service lives.

Two places:
- FORGE_HOME, local to each node: the registry next to the manager, built-in models.
- FORGE_STORAGE, shared by every node: datasets, Ray Train runs (checkpoints) and
  trained models. A local path (an NFS mount on a cluster) or an object-store URI
  (`s3://bucket/prefix`, `gs://bucket/prefix`), both through pyarrow's filesystem
  layer, the one Ray Train's `storage_path` uses. Object-store options go in the
  URI's query, e.g. `s3://bucket/forge?endpoint_override=host:9000&scheme=http`;
  credentials come from the provider's usual chain (environment, instance role).

Paths inside FORGE_STORAGE are strings in pyarrow's form ("bucket/prefix/models/3"
for S3, an absolute path locally). Code that needs a real file (a tokenizer, a
JSONL reader) asks for a local copy: on a local filesystem that is the file itself.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from forge.settings import Settings

_URI_SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "abfss://", "file://")


def worker_log_name(rank: int) -> str:
    """A worker's log file in its job's log folder."""
    return f"rank-{rank}.log"


def is_uri(location: str) -> bool:
    return location.startswith(_URI_SCHEMES)


def open_filesystem(location: str) -> tuple[Any, str]:
    """The pyarrow filesystem and root path for FORGE_STORAGE (a local path or a URI)."""
    import pyarrow.fs as pafs

    if is_uri(location):
        filesystem, root = pafs.FileSystem.from_uri(location)
        return filesystem, root.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def copy_out(filesystem: Any, source: str, local: Path) -> Path:
    """Copy a file or folder at `source` on `filesystem` to the local path `local`; returns `local`."""
    import pyarrow.fs as pafs

    # pyarrow creates no local folders: make the tree's root (its subfolders follow).
    is_folder = filesystem.get_file_info(source).type == pafs.FileType.Directory
    (local if is_folder else local.parent).mkdir(parents=True, exist_ok=True)
    pafs.copy_files(source, str(local), source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
    return local


def copy_in(local: Path, filesystem: Any, target: str) -> None:
    """Copy the local file or folder `local` to `target` on `filesystem` (merged into a folder there)."""
    import pyarrow.fs as pafs

    pafs.copy_files(str(local), target, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=filesystem)


def local_file(location: str, scratch: Path) -> Path:
    """A local file with the content at `location` (a path as is, or a URI copied into scratch)."""
    if not is_uri(location):
        return Path(location)
    filesystem, path = open_filesystem(location)
    return copy_out(filesystem, path, scratch / path.rsplit("/", 1)[-1])


def publish_folder(local: Path, location: str) -> None:
    """Copy a local folder to `location` (a path or URI), replacing whatever was there."""
    import pyarrow.fs as pafs

    filesystem, path = open_filesystem(location)
    if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
        filesystem.delete_dir(path)
    copy_in(local, filesystem, path)


@contextmanager
def folder_written_to(location: str, scratch: Path) -> Iterator[Path]:
    """A fresh local folder to fill; once the block ends without error it replaces the folder at `location`.

    Whole or not at all: locally the folder is renamed into place; for an object store
    (a URI) it is written under `scratch` first, then copied up.
    """
    remote = is_uri(location)
    final = scratch / "folder-to-publish" if remote else Path(location)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    yield partial
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    if remote:
        publish_folder(final, location)


class Storage:
    def __init__(self, settings: Settings) -> None:
        self.home = settings.home
        self.location = settings.storage
        self.fs, self.root = open_filesystem(settings.storage)
        self.is_local = not is_uri(settings.storage) or settings.storage.startswith("file://")

    # ------------------------------------------------ local to each node (FORGE_HOME)

    @property
    def database(self) -> Path:
        return self.home / "forge.db"

    @property
    def builtin_dir(self) -> Path:
        return self.home / "builtin"

    @property
    def cache_dir(self) -> Path:
        """Local copies of shared files (trained models a playground replica loads)."""
        return self.home / "cache"

    @property
    def scratch_dir(self) -> Path:
        """Local files on their way into shared storage (uploads being validated)."""
        return self.home / "scratch"

    # ------------------------------------------------ shared (FORGE_STORAGE), pyarrow paths

    @property
    def datasets_dir(self) -> str:
        return f"{self.root}/datasets"

    @property
    def runs_dir(self) -> str:
        return f"{self.root}/runs"

    @property
    def models_dir(self) -> str:
        return f"{self.root}/models"

    def dataset_path(self, filename: str) -> str:
        return f"{self.datasets_dir}/{filename}"

    def model_dir(self, model_id: int) -> str:
        return f"{self.models_dir}/{model_id}"

    def run_dir(self, job_id: str) -> str:
        """The job's Ray Train run (its checkpoints); the run is named by the job id."""
        return f"{self.runs_dir}/{job_id}"

    def job_logs_dir(self, job_id: str) -> str:
        """The job's worker output, one `rank-<rank>.log` per worker (forge.training.worker_log)."""
        return f"{self.root}/logs/{job_id}"

    def staging_dir(self, job_id: str) -> str:
        """Where a job's rank 0 puts the final adapter before it is registered."""
        return f"{self.models_dir}/.staging-{job_id}"

    def merge_staging_dir(self) -> str:
        """A fresh folder for a merged model on its way to being registered (hidden: never a model)."""
        return f"{self.models_dir}/.merge-{uuid.uuid4().hex}"

    def upload_staging_path(self) -> str:
        """A fresh name for an upload on its way into datasets/ (hidden: never listed)."""
        return f"{self.datasets_dir}/.upload-{uuid.uuid4().hex}.part"

    def uri(self, path: str) -> str:
        """`path` as a location another process opens with open_filesystem (query options kept)."""
        if self.is_local:
            return path
        scheme, _, rest = self.location.partition("://")
        query = rest.partition("?")[2]
        return f"{scheme}://{path}" + (f"?{query}" if query else "")

    def display(self, path: str) -> str:
        """How a user reads a shared path: a local path, or scheme://bucket/key without options."""
        return self.uri(path).partition("?")[0]

    def path_of(self, shown: str) -> str:
        """The storage path behind display() or uri()."""
        return shown.partition("?")[0].split("://", 1)[-1] if not self.is_local else shown

    def ensure_dirs(self) -> None:
        for folder in (self.home, self.builtin_dir, self.cache_dir, self.scratch_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for shared in (self.datasets_dir, self.runs_dir, self.models_dir):
            self.fs.create_dir(shared, recursive=True)

    # ------------------------------------------------ operations on shared paths

    def exists(self, path: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def size_bytes(self, path: str) -> int:
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return info.size
        if info.type == pafs.FileType.NotFound:
            return 0
        found = self.fs.get_file_info(pafs.FileSelector(path, recursive=True))
        return sum(f.size for f in found if f.type == pafs.FileType.File)

    def remove_tree(self, path: str) -> None:
        """Delete a file or folder; absent is fine."""
        import pyarrow.fs as pafs

        kind = self.fs.get_file_info(path).type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(path)
        elif kind == pafs.FileType.File:
            self.fs.delete_file(path)

    def list_files(self, folder: str) -> list[tuple[str, int]]:
        """Every file under `folder` as (path relative to it, size in bytes), sorted by path."""
        import pyarrow.fs as pafs

        found = self.fs.get_file_info(pafs.FileSelector(folder, recursive=True))
        prefix = folder.rstrip("/") + "/"
        return sorted((f.path.removeprefix(prefix), f.size) for f in found if f.type == pafs.FileType.File)

    def open_input(self, path: str) -> Any:
        """A sequential reader of the file at `path` (a context manager with .read(n)); nothing is buffered whole."""
        return self.fs.open_input_stream(path)

    def read_text(self, path: str) -> str:
        with self.open_input(path) as stream:
            return stream.read().decode("utf-8")

    def move_into_place(self, source: str, target: str) -> str:
        """Replace `target` with the folder `source` (a rename locally); returns the target as users read it."""
        self.remove_tree(target)
        self.move(source, target)
        return self.display(target)

    def move(self, source: str, target: str) -> None:
        """Move a file or folder within storage (a rename locally; copy then delete on object stores)."""
        if self.is_local:
            os.replace(source, target)
            return
        import pyarrow.fs as pafs

        if self.fs.get_file_info(source).type == pafs.FileType.File:
            self.fs.move(source, target)
            return
        pafs.copy_files(source, target, source_filesystem=self.fs, destination_filesystem=self.fs)
        self.fs.delete_dir(source)

    def put(self, local: Path, target: str) -> None:
        """Copy a local file or folder to `target` in storage."""
        if not self.is_local:
            copy_in(local, self.fs, target)
        elif local.is_dir():
            shutil.copytree(local, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(local, target)

    def fetch(self, source: str, local: Path) -> Path:
        """Copy a file or folder from storage to `local`; returns `local`."""
        return copy_out(self.fs, source, local)

    def local_copy(self, source: str, name: str) -> Path:
        """A local path holding `source`: the file itself locally, else a fresh copy under cache_dir/name."""
        if self.is_local:
            return Path(source)
        target = self.cache_dir / name
        partial = self.cache_dir / f".{name}.{uuid.uuid4().hex}.partial"
        try:
            self.fetch(source, partial)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return target
