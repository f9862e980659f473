"""The uploaded datasets: registered under a free name, listed, read a page at a time, deleted.

A plain class over the registry and the storage, used by the TrainingManager (its
only writer); no Ray. Storage I/O runs in a thread, off the manager's event loop.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Collection
from typing import Any

from forge.dataset_names import missing_dataset, sanitize_filename, versioned_name
from forge.errors import Conflict, NotFound
from forge.registry import DatasetRecord, Registry
from forge.schemas import ValidationReport, utc_iso
from forge.storage import Storage


class DatasetStore:
    def __init__(self, registry: Registry, storage: Storage) -> None:
        self.registry = registry
        self.storage = storage
        # Names chosen by registrations still moving their file: taken, though not in the registry yet.
        self._reserved: set[str] = set()

    async def register(self, staged: str, filename: str, validation: ValidationReport) -> DatasetRecord:
        """Move a validated upload (a storage path) into place under a free name and record it.

        The name is reserved before the first await: two uploads of one name interleave on
        the manager's event loop, and without it both would pick the same free name, the
        second move would overwrite the first file and its row would clash.
        """
        try:
            name = versioned_name(sanitize_filename(filename), self._taken)
            self._reserved.add(name)
            try:
                final = self.storage.dataset_path(name)
                await asyncio.to_thread(self.storage.move, staged, final)
                record = DatasetRecord(
                    filename=name, format=validation.format, num_examples=validation.num_examples,
                    size_bytes=self.storage.size_bytes(final), uploaded_at=utc_iso(),
                )
                self.registry.add_dataset(record)
            finally:
                self._reserved.discard(name)
        finally:
            await asyncio.to_thread(self.storage.remove_tree, staged)
        return record

    def _taken(self, name: str) -> bool:
        return (name in self._reserved or self.registry.get_dataset(name) is not None
                or self.storage.exists(self.storage.dataset_path(name)))

    def all(self) -> list[DatasetRecord]:
        return self.registry.list_datasets()

    def get(self, filename: str) -> DatasetRecord:
        record = self.registry.get_dataset(filename)
        if record is None:
            raise NotFound(missing_dataset(filename, [d.filename for d in self.all()]))
        return record

    async def rows(self, filename: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Rows `offset` .. `offset + limit - 1` as stored (blank lines skipped), and whether more follow."""
        path = self.storage.dataset_path(self.get(filename).filename)
        return await asyncio.to_thread(self._read_rows, path, offset, limit)

    def _read_rows(self, path: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        rows: list[dict[str, Any]] = []
        with self.storage.fs.open_input_stream(path) as raw:  # streamed: memory stays flat
            index = 0
            for line in io.TextIOWrapper(raw, encoding="utf-8-sig"):
                if not line.strip():
                    continue
                if index >= offset + limit:
                    return rows, True
                if index >= offset:
                    rows.append(json.loads(line))
                index += 1
        return rows, False

    async def delete(self, filename: str, used_by: Collection[str]) -> None:
        """Delete the dataset (row first, then the file); `used_by`: the active or queued jobs training on it."""
        record = self.get(filename)
        if used_by:
            raise Conflict(f"dataset {filename!r} is used by {', '.join(sorted(used_by))}; stop or cancel "
                           "the job(s) first")
        self.registry.delete_dataset(filename)
        await asyncio.to_thread(self.storage.remove_tree, self.storage.dataset_path(record.filename))
