"""An uploaded dataset file, from the request body to a registered dataset: POST /api/upload_dataset and
POST /v1/files (and a completed /v1/uploads upload) store through here, so a file is validated, converted and named the same way.

The upload is validated from a local file: on a local or mounted storage that file is
already in datasets/ (hidden), so registering it is a rename; on an object store it is
copied up once valid. A CSV, Parquet or JSON upload arrives in scratch/ and is
converted into that file. A refused upload leaves nothing stored.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Optional

from fastapi import UploadFile

from forge import dataset_files, datasets
from forge.bounded_copy import copy_within, declared_over
from forge.errors import BadRequest, PayloadTooLarge
from forge.schemas import UploadResponse
from forge.settings import Settings
from forge.storage import Storage


class DatasetUploads:
    """Stores uploaded dataset files for the ingress (which holds no state: this holds its collaborators)."""

    def __init__(self, settings: Settings, storage: Storage, manager: Any) -> None:
        self.settings = settings
        self.storage = storage
        self.manager = manager

    @property
    def limit_bytes(self) -> int:
        return int(self.settings.max_upload_mb * 1024 * 1024)

    def refuse_oversized(self, content_length: Optional[str]) -> None:
        """413 before reading a body whose declared length is over FORGE_MAX_UPLOAD_MB."""
        if declared_over(content_length, self.limit_bytes):
            raise self._too_large()

    async def store(self, file: UploadFile, format: Optional[str]) -> UploadResponse:
        """Validate, convert and register `file` as a dataset; 400 (with every line's errors) or 413 otherwise."""
        return await self._store(file.filename, format,
                                 lambda received: copy_within(file, received, self.limit_bytes, self._too_large))

    async def store_local(self, path: Path, filename: str) -> UploadResponse:
        """As `store`, for a file already on this machine (an assembled upload): it is moved, not copied."""
        return await self._store(filename, None, lambda received: asyncio.to_thread(shutil.move, path, received))

    async def _store(self, uploaded_name: Optional[str], format: Optional[str],
                     receive: Callable[[Path], Awaitable[Any]]) -> UploadResponse:
        filename, file_type, stored_name = dataset_files.upload_names(uploaded_name)
        if format is not None and format not in datasets.FORMATS:
            raise BadRequest(f"unknown dataset format {format!r}; known: {', '.join(datasets.FORMATS)}")
        staged = self.storage.upload_staging_path()
        local = Path(staged) if self.storage.is_local else self.storage.scratch_dir / staged.rsplit("/", 1)[-1]
        received = self.storage.scratch_dir / f"{local.name}{file_type.suffix}" if file_type.converted else local
        try:
            await receive(received)
            report = await asyncio.to_thread(dataset_files.stage_upload, received, file_type, local, format)
            if not report.valid:
                raise BadRequest(
                    f"{filename} is not a valid dataset: {report.total_errors} error(s)",
                    extra={"validation": report.model_dump()},
                )
            if not self.storage.is_local:
                await asyncio.to_thread(self.storage.put, local, staged)
            record = await self.manager.register_dataset.remote(staged, stored_name, report.model_dump())
        finally:
            received.unlink(missing_ok=True)
            local.unlink(missing_ok=True)
            if not self.storage.is_local:
                await asyncio.to_thread(self.storage.remove_tree, staged)
        return UploadResponse(
            filename=record["filename"], num_examples=report.num_examples, validation=report,
            message=dataset_files.upload_message(filename, file_type, stored_name, record["filename"], report),
        )

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"upload exceeds FORGE_MAX_UPLOAD_MB={self.settings.max_upload_mb:g}")
