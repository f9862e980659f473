"""OpenAI's Uploads: a large file sent in parts, assembled into a file (a dataset) when completed.

An upload lives in its own folder under scratch/uploads/ until it completes: a small
`upload.json` with its state and one file per part. Nothing of it is a dataset before
`complete`, so an incomplete, cancelled or expired upload is never visible as a file.
Each part is written to disk as it arrives, so what the service holds in memory is
bounded by the part size limit, whatever the file's size.

`UploadSessions` is a plain class over that folder (no Ray, no HTTP): the ingress's
routes hand it the request's body and the dataset pipeline's answer.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, Field

from forge.bounded_copy import AsyncReadable, copy_within, declared_over
from forge.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from forge.openai_fine_tuning import FILE_PURPOSE, FileObject

UploadStatus = Literal["pending", "completed", "cancelled", "expired"]
DEFAULT_LIFETIME_S = 3600  # OpenAI's: an upload not completed within an hour expires
_ASSEMBLY_CHUNK = 8 * 1024 * 1024
_COMPLETING = ".completing"


class ExpiresAfter(BaseModel):
    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(ge=3600, le=30 * 24 * 3600)


class UploadCreate(BaseModel):
    """POST /v1/uploads: what the file will be. Its parts must add up to `bytes` exactly."""

    bytes: int = Field(ge=1, description="The file's total size; the parts must add up to it.")
    filename: str = Field(min_length=1, description="The file's name (its suffix says its type: .jsonl, .csv...).")
    mime_type: str = Field(description="The file's MIME type (the service reads the type from `filename`).")
    purpose: str = Field(description="`fine-tune` (the only purpose this service stores).")
    expires_after: Optional[ExpiresAfter] = None


class UploadComplete(BaseModel):
    """POST /v1/uploads/{id}/complete: the parts in the file's order, and optionally the file's MD5."""

    part_ids: list[str] = Field(min_length=1)
    md5: Optional[str] = Field(None, description="Hex MD5 of the whole file; checked when given.")


class Upload(BaseModel):
    """OpenAI's Upload object: a file on its way in, and once completed the file it became."""

    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: UploadStatus
    file: Optional[FileObject] = Field(None, description="The stored file, once completed.")


class UploadPart(BaseModel):
    """One part received whole; completion names parts by these ids, in the file's order."""

    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str


def _missing(upload_id: str) -> NotFound:
    return NotFound(f"no upload {upload_id!r}", extra={"param": "upload_id"})


class UploadSessions:
    """The uploads in progress under `root`, each part bounded by `part_limit` and the file by `file_limit` bytes."""

    def __init__(self, root: Path, part_limit: int, file_limit: int) -> None:
        self.root = root
        self.part_limit = part_limit
        self.file_limit = file_limit

    def create(self, body: UploadCreate) -> Upload:
        if body.purpose != FILE_PURPOSE:
            raise BadRequest(f"purpose {body.purpose!r} is not supported: only {FILE_PURPOSE!r}",
                             extra={"param": "purpose"})
        if body.bytes > self.file_limit:
            raise PayloadTooLarge(f"a file of {body.bytes} bytes exceeds FORGE_MAX_UPLOAD_MB "
                                  f"({self.file_limit} bytes)", extra={"param": "bytes"})
        self._forget_expired()
        now = int(time.time())
        lifetime = body.expires_after.seconds if body.expires_after else DEFAULT_LIFETIME_S
        upload = Upload(id=f"upload_{secrets.token_hex(12)}", bytes=body.bytes, created_at=now,
                        expires_at=now + lifetime, filename=Path(body.filename).name, purpose=body.purpose,
                        status="pending")
        (self.root / upload.id / "parts").mkdir(parents=True)
        self._save(upload)
        return upload

    def get(self, upload_id: str) -> Upload:
        folder = self._folder(upload_id)
        try:
            upload = Upload.model_validate_json((folder / "upload.json").read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            raise _missing(upload_id) from None
        if upload.status == "pending" and time.time() > upload.expires_at:
            upload = self._end(upload, "expired")
        return upload

    def refuse_oversized_part(self, content_length: Optional[str]) -> None:
        """413 before reading a part whose declared length (less its multipart framing) is over the limit."""
        if declared_over(content_length, self.part_limit):
            raise self._part_too_large()

    async def add_part(self, upload_id: str, body: AsyncReadable) -> UploadPart:
        """Write a part to disk as its bytes arrive; it exists (has an id) only once it is whole."""
        self._pending(upload_id)
        part = UploadPart(id=f"part_{secrets.token_hex(12)}", created_at=int(time.time()), upload_id=upload_id)
        target = self._folder(upload_id) / "parts" / part.id
        partial = target.with_name(f".{part.id}.partial")
        try:
            if await copy_within(body, partial, self.part_limit, self._part_too_large) == 0:
                raise BadRequest("an upload part needs data", extra={"param": "data"})
            self._pending(upload_id)  # not cancelled or completed while it arrived
            partial.rename(target)
        finally:
            partial.unlink(missing_ok=True)
        return part

    def assemble(self, upload_id: str, body: UploadComplete, into: Path) -> None:
        """Write the parts, in `body`'s order, into `into`: the whole file, checked against its size and MD5."""
        upload = self._pending(upload_id)
        if len(set(body.part_ids)) != len(body.part_ids):
            raise BadRequest("a part is listed twice in part_ids", extra={"param": "part_ids"})
        parts = [self._folder(upload_id) / "parts" / part_id for part_id in body.part_ids]
        missing = [path.name for path in parts if not path.is_file() or path.name.startswith(".")]
        if missing:
            raise BadRequest(f"upload {upload_id} has no part {missing[0]!r}", extra={"param": "part_ids"})
        total = sum(path.stat().st_size for path in parts)
        if total != upload.bytes:
            raise BadRequest(f"the parts hold {total} bytes; the upload was created for {upload.bytes}",
                             extra={"param": "part_ids"})
        digest = hashlib.md5(usedforsecurity=False)
        with into.open("wb") as out:
            for path in parts:
                with path.open("rb") as part:
                    while chunk := part.read(_ASSEMBLY_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if body.md5 is not None and body.md5.lower() != digest.hexdigest():
            into.unlink()
            raise BadRequest(f"the parts' MD5 is {digest.hexdigest()}, not {body.md5}", extra={"param": "md5"})

    @contextmanager
    def completing(self, upload_id: str) -> Iterator[Upload]:
        """While the upload is assembled and stored: a second complete or a cancel meanwhile is a 409."""
        upload = self._pending(upload_id)
        marker = self._folder(upload_id) / _COMPLETING
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            raise Conflict(f"upload {upload_id} is being completed") from None
        try:
            yield upload
        finally:
            marker.unlink(missing_ok=True)

    def complete(self, upload_id: str, file: FileObject) -> Upload:
        """Record the stored file and drop the parts: the upload is done."""
        return self._end(self.get(upload_id), "completed", file)

    def cancel(self, upload_id: str) -> Upload:
        upload = self._pending(upload_id)
        if (self._folder(upload_id) / _COMPLETING).exists():
            raise Conflict(f"upload {upload_id} is being completed")
        return self._end(upload, "cancelled")

    def assembly_path(self, upload_id: str) -> Path:
        """Where `assemble` may write the file (inside the upload's folder, removed with it)."""
        return self._folder(upload_id) / "assembled"

    # ---------------------------------------------------------------- inside

    def _folder(self, upload_id: str) -> Path:
        if not upload_id.startswith("upload_") or not upload_id[len("upload_"):].isalnum():
            raise _missing(upload_id)
        return self.root / upload_id

    def _pending(self, upload_id: str) -> Upload:
        upload = self.get(upload_id)
        if upload.status != "pending":
            raise Conflict(f"upload {upload_id} is {upload.status}: it takes no more parts and cannot complete")
        return upload

    def _end(self, upload: Upload, status: UploadStatus, file: Optional[FileObject] = None) -> Upload:
        ended = upload.model_copy(update={"status": status, "file": file})
        self._save(ended)
        shutil.rmtree(self._folder(upload.id) / "parts", ignore_errors=True)
        self.assembly_path(upload.id).unlink(missing_ok=True)
        return ended

    def _save(self, upload: Upload) -> None:
        # Written whole, then renamed: a reader never sees half a state.
        target = self._folder(upload.id) / "upload.json"
        partial = target.with_name(".upload.json.partial")
        partial.write_text(upload.model_dump_json())
        os.replace(partial, target)

    def _forget_expired(self) -> None:
        """Drop the parts of expired uploads, and the folders of uploads that ended over a day ago."""
        if not self.root.is_dir():
            return
        horizon = time.time() - 24 * 3600
        for folder in self.root.iterdir():
            try:
                upload = self.get(folder.name)  # an expired upload ends (its parts go) when it is read
            except NotFound:
                continue
            if upload.expires_at < horizon:
                shutil.rmtree(folder, ignore_errors=True)

    def _part_too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"an upload part is at most {self.part_limit} bytes (FORGE_UPLOAD_PART_MB)",
                               extra={"param": "data"})
