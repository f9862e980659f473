"""OpenAI's Uploads through the official `openai` SDK, over real HTTP: a file sent in parts becomes a file.

The session's service runs with FORGE_UPLOAD_PART_MB=1 and FORGE_MAX_UPLOAD_MB=2.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import openai
import pytest
from support import Service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(service: Service) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0, timeout=120)


def chat_file(path: Path, rows: int) -> Path:
    lines = [json.dumps({"messages": [{"role": "user", "content": f"What is {i} plus {i}? " + "Think. " * 20},
                                      {"role": "assistant", "content": str(2 * i)}]}) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def stored_names(service: Service) -> set[str]:
    return {d["filename"] for d in service.get("/api/datasets").json()["datasets"]}


def test_a_file_sent_in_parts_is_stored_byte_for_byte(client: openai.OpenAI, service: Service,
                                                       tmp_path: Path) -> None:
    path = chat_file(tmp_path / "uploaded-in-parts.jsonl", rows=1500)
    size = path.stat().st_size
    assert size > 256 * 1024
    upload = client.uploads.upload_file_chunked(file=path, mime_type="application/jsonl", purpose="fine-tune",
                                                part_size=64 * 1024)
    assert upload.status == "completed" and upload.bytes == size
    assert upload.file is not None
    content = client.files.content(upload.file.id).read()
    assert hashlib.sha256(content).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    dataset = service.get(f"/api/datasets/{upload.file.id}").json()
    assert (dataset["format"], dataset["num_examples"]) == ("chat", 1500)


def test_parts_sent_out_of_order_join_in_the_order_given_at_completion(client: openai.OpenAI,
                                                                       tmp_path: Path) -> None:
    data = chat_file(tmp_path / "reordered.jsonl", rows=40).read_bytes()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    pieces = [data[a:b] for a, b in zip(cut, cut[1:])]
    upload = client.uploads.create(bytes=len(data), filename="reordered.jsonl", mime_type="application/jsonl",
                                   purpose="fine-tune")
    ids = {i: client.uploads.parts.create(upload.id, data=pieces[i]).id for i in (2, 0, 1)}
    completed = client.uploads.complete(upload.id, part_ids=[ids[0], ids[1], ids[2]],
                                        md5=hashlib.md5(data).hexdigest())
    assert client.files.content(completed.file.id).read() == data


def test_an_incomplete_or_refused_upload_is_never_a_file(client: openai.OpenAI, service: Service,
                                                        tmp_path: Path) -> None:
    data = chat_file(tmp_path / "never-stored.jsonl", rows=20).read_bytes()
    before = stored_names(service)
    upload = client.uploads.create(bytes=len(data), filename="never-stored.jsonl", mime_type="application/jsonl",
                                   purpose="fine-tune")
    first = client.uploads.parts.create(upload.id, data=data[:100])
    assert stored_names(service) == before

    with pytest.raises(openai.BadRequestError, match="hold 100 bytes"):
        client.uploads.complete(upload.id, part_ids=[first.id])
    assert stored_names(service) == before

    cancelled = client.uploads.cancel(upload.id)
    assert cancelled.status == "cancelled" and cancelled.file is None
    with pytest.raises(openai.ConflictError, match="cancelled"):
        client.uploads.parts.create(upload.id, data=data[100:])
    assert stored_names(service) == before
    assert not any(name.startswith("never-stored") for name in stored_names(service))


def test_invalid_rows_refuse_the_completion_with_their_line_numbers(client: openai.OpenAI, service: Service) -> None:
    data = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\nnot json\n'
    upload = client.uploads.create(bytes=len(data), filename="bad-rows.jsonl", mime_type="application/jsonl",
                                   purpose="fine-tune")
    part = client.uploads.parts.create(upload.id, data=data)
    with pytest.raises(openai.BadRequestError, match="line 2"):
        client.uploads.complete(upload.id, part_ids=[part.id])
    assert not any(name.startswith("bad-rows") for name in stored_names(service))


def test_a_part_over_the_size_limit_is_refused(client: openai.OpenAI) -> None:
    upload = client.uploads.create(bytes=1_500_000, filename="big-part.jsonl", mime_type="application/jsonl",
                                   purpose="fine-tune")
    with pytest.raises(openai.APIStatusError, match="FORGE_UPLOAD_PART_MB") as refused:
        client.uploads.parts.create(upload.id, data=b"x" * 1_200_000)
    assert refused.value.status_code == 413


def test_unknown_uploads_and_names_that_cannot_be_stored_are_the_sdk_s_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.uploads.parts.create("upload_0123456789ab", data=b"x")
    with pytest.raises(openai.BadRequestError) as refused:
        client.uploads.create(bytes=10, filename="weights.bin", mime_type="application/octet-stream",
                              purpose="fine-tune")
    assert refused.value.body["param"] == "filename"
    with pytest.raises(openai.APIStatusError) as too_big:
        client.uploads.create(bytes=3 * 1024 * 1024, filename="too-big.jsonl", mime_type="application/jsonl",
                              purpose="fine-tune")
    assert too_big.value.status_code == 413
