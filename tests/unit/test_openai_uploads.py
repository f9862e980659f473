"""Upload sessions (forge/openai_uploads.py) on a real folder: parts, assembly, limits, ending states."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest

from forge.bounded_copy import MULTIPART_FRAMING_BYTES
from forge.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from forge.openai_fine_tuning import FileObject
from forge.openai_uploads import UploadComplete, UploadCreate, UploadSessions


class TrickledBody:
    """A part's body as the ingress reads it (an UploadFile), arriving a few bytes per read."""

    def __init__(self, data: bytes, per_read: int = 7) -> None:
        self.data, self.per_read, self.offset = data, per_read, 0

    async def read(self, size: int) -> bytes:
        piece = self.data[self.offset:self.offset + min(size, self.per_read)]
        self.offset += len(piece)
        return piece


def add_part(sessions: UploadSessions, upload_id: str, data: bytes) -> str:
    return asyncio.run(sessions.add_part(upload_id, TrickledBody(data))).id


@pytest.fixture
def sessions(tmp_path: Path) -> UploadSessions:
    return UploadSessions(tmp_path / "uploads", part_limit=100, file_limit=1000)


def create(sessions: UploadSessions, size: int, filename: str = "big.jsonl"):
    return sessions.create(UploadCreate(bytes=size, filename=filename, mime_type="application/jsonl",
                                        purpose="fine-tune"))


def test_parts_join_in_the_order_completion_names_whatever_order_they_arrived(sessions: UploadSessions,
                                                                                tmp_path: Path) -> None:
    pieces = [b"a" * 100, b"b" * 100, b"c" * 50]
    upload = create(sessions, 250)
    ids = {piece: add_part(sessions, upload.id, piece) for piece in reversed(pieces)}
    target = tmp_path / "joined"
    whole = b"".join(pieces)
    sessions.assemble(upload.id, UploadComplete(part_ids=[ids[p] for p in pieces],
                                                md5=hashlib.md5(whole).hexdigest()), target)
    assert target.read_bytes() == whole


def test_a_part_over_the_limit_is_refused_and_leaves_no_bytes(sessions: UploadSessions) -> None:
    upload = create(sessions, 300)
    with pytest.raises(PayloadTooLarge, match="at most 100 bytes"):
        add_part(sessions, upload.id, b"x" * 101)
    assert list((sessions.root / upload.id / "parts").iterdir()) == []
    with pytest.raises(PayloadTooLarge):
        sessions.refuse_oversized_part(str(101 + MULTIPART_FRAMING_BYTES))
    sessions.refuse_oversized_part(str(100 + MULTIPART_FRAMING_BYTES))  # the limit plus the framing: accepted


def test_a_file_over_the_upload_limit_or_with_another_purpose_is_refused_at_creation(sessions: UploadSessions) -> None:
    with pytest.raises(PayloadTooLarge):
        create(sessions, 1001)
    with pytest.raises(BadRequest, match="purpose"):
        sessions.create(UploadCreate(bytes=10, filename="a.jsonl", mime_type="application/jsonl",
                                     purpose="assistants"))


def test_completion_checks_sizes_parts_and_checksum(sessions: UploadSessions, tmp_path: Path) -> None:
    upload = create(sessions, 150)
    first = add_part(sessions, upload.id, b"1" * 100)
    second = add_part(sessions, upload.id, b"2" * 50)
    target = tmp_path / "joined"
    with pytest.raises(BadRequest, match="hold 100 bytes; the upload was created for 150"):
        sessions.assemble(upload.id, UploadComplete(part_ids=[first]), target)
    with pytest.raises(BadRequest, match="twice"):
        sessions.assemble(upload.id, UploadComplete(part_ids=[first, first]), target)
    with pytest.raises(BadRequest, match="no part"):
        sessions.assemble(upload.id, UploadComplete(part_ids=[first, "part_0000"]), target)
    with pytest.raises(BadRequest, match="MD5"):
        sessions.assemble(upload.id, UploadComplete(part_ids=[first, second], md5="0" * 32), target)
    assert not target.exists()
    assert sessions.get(upload.id).status == "pending"  # a refused completion can be retried


def test_a_completed_upload_keeps_its_file_and_drops_its_parts(sessions: UploadSessions, tmp_path: Path) -> None:
    upload = create(sessions, 5)
    add_part(sessions, upload.id, b"hello")
    file = FileObject(id="big.jsonl", bytes=5, created_at=1, filename="big.jsonl", format="text", num_examples=1)
    completed = sessions.complete(upload.id, file)
    assert (completed.status, completed.file) == ("completed", file)
    assert sessions.get(upload.id) == completed
    assert not (sessions.root / upload.id / "parts").exists()
    with pytest.raises(Conflict, match="completed"):
        add_part(sessions, upload.id, b"more")


def test_a_cancelled_upload_takes_nothing_more(sessions: UploadSessions) -> None:
    upload = create(sessions, 10)
    add_part(sessions, upload.id, b"12345")
    assert sessions.cancel(upload.id).status == "cancelled"
    assert not (sessions.root / upload.id / "parts").exists()
    with pytest.raises(Conflict, match="cancelled"):
        add_part(sessions, upload.id, b"67890")
    with pytest.raises(Conflict):
        sessions.cancel(upload.id)


def test_a_second_completion_or_a_cancel_while_one_runs_is_a_conflict(sessions: UploadSessions) -> None:
    upload = create(sessions, 5)
    with sessions.completing(upload.id):
        with pytest.raises(Conflict, match="being completed"):
            with sessions.completing(upload.id):
                pass
        with pytest.raises(Conflict, match="being completed"):
            sessions.cancel(upload.id)
    with sessions.completing(upload.id):  # the first one ended: the upload may be completed again
        pass


def test_an_upload_past_its_hour_has_expired_and_its_parts_are_gone(sessions: UploadSessions,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    upload = create(sessions, 10)
    add_part(sessions, upload.id, b"12345")
    later = time.time() + 3601
    monkeypatch.setattr(time, "time", lambda: later)
    assert sessions.get(upload.id).status == "expired"
    assert not (sessions.root / upload.id / "parts").exists()
    with pytest.raises(Conflict, match="expired"):
        add_part(sessions, upload.id, b"67890")


def test_uploads_that_ended_over_a_day_ago_are_forgotten_when_another_starts(sessions: UploadSessions,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    old = create(sessions, 10)
    much_later = time.time() + 3600 + 25 * 3600
    monkeypatch.setattr(time, "time", lambda: much_later)
    fresh = create(sessions, 10)
    with pytest.raises(NotFound):
        sessions.get(old.id)
    assert sessions.get(fresh.id).status == "pending"


@pytest.mark.parametrize("upload_id", ["upload_../../etc", "../x", "upload_", "file_abc"])
def test_an_id_that_is_not_an_upload_is_not_found(sessions: UploadSessions, upload_id: str) -> None:
    with pytest.raises(NotFound):
        sessions.get(upload_id)
