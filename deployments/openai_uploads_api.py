"""OpenAI's Uploads under /v1: a large file in parts (`client.uploads`), stored as a file when completed.

A mixin of the ingress, like deployments/openai_fine_tuning_api.py. Upload state lives on
the local disk (forge/openai_uploads.py); a completed upload goes through the same
dataset pipeline as POST /v1/files, so it is validated, named and stored the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, File, Request, UploadFile

from deployments.openai_errors import OPENAI_ERROR_RESPONSES, OPENAI_PREFIX
from deployments.openai_fine_tuning_api import with_line_errors
from forge import dataset_files
from forge.errors import BadRequest
from forge.openai_uploads import Upload, UploadComplete, UploadCreate, UploadPart, UploadSessions

router = APIRouter(prefix=OPENAI_PREFIX, tags=["OpenAI-compatible fine-tuning"], responses=OPENAI_ERROR_RESPONSES)

class OpenAIUploadRoutes:
    """The /v1/uploads routes; the ingress provides `upload_sessions`, `uploads` (the dataset pipeline) and `_file`."""

    upload_sessions: UploadSessions
    uploads: Any

    @router.post("/uploads", response_model=Upload)
    async def openai_create_upload(self, body: UploadCreate) -> Upload:
        """Start an upload of `bytes` bytes; add its parts, then complete it (it expires after an hour)."""
        try:
            dataset_files.upload_names(body.filename)  # a name the service cannot store fails now, not at the end
        except BadRequest as error:
            raise BadRequest(error.detail, extra={"param": "filename"}) from None
        return await asyncio.to_thread(self.upload_sessions.create, body)

    @router.post("/uploads/{upload_id}/parts", response_model=UploadPart)
    async def openai_add_upload_part(
        self, upload_id: str, request: Request,
        data: UploadFile = File(..., description="The part's bytes (at most FORGE_UPLOAD_PART_MB)."),
    ) -> UploadPart:
        """Add a part; parts may be sent in parallel, their order is given at completion."""
        self.upload_sessions.refuse_oversized_part(request.headers.get("content-length"))
        return await self.upload_sessions.add_part(upload_id, data)

    @router.post("/uploads/{upload_id}/complete", response_model=Upload)
    async def openai_complete_upload(self, upload_id: str, body: UploadComplete) -> Upload:
        """Join the parts in `part_ids` order into the file, validate and store it; the upload then holds it."""
        sessions = self.upload_sessions
        with sessions.completing(upload_id) as upload:
            assembled = sessions.assembly_path(upload_id)
            await asyncio.to_thread(sessions.assemble, upload_id, body, assembled)
            try:
                stored = await self.uploads.store_local(assembled, upload.filename)
            except BadRequest as error:
                raise with_line_errors(error) from None
            file = await self._file(stored.filename)
            return await asyncio.to_thread(sessions.complete, upload_id, file)

    @router.post("/uploads/{upload_id}/cancel", response_model=Upload)
    async def openai_cancel_upload(self, upload_id: str) -> Upload:
        """Drop the upload and its parts; it is never stored."""
        return await asyncio.to_thread(self.upload_sessions.cancel, upload_id)

    @router.get("/uploads/{upload_id}", response_model=Upload)
    async def openai_retrieve_upload(self, upload_id: str) -> Upload:
        return await asyncio.to_thread(self.upload_sessions.get, upload_id)
