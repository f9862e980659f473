"""A completion's reply in OpenAI's shape, whole and as server-sent events, read back with the openai SDK's
own types (the client that must understand them)."""

from __future__ import annotations

import json

from openai.types import Completion as SdkCompletion
from openai.types.chat import ChatCompletion as SdkChatCompletion
from openai.types.chat import ChatCompletionChunk as SdkChunk

from forge.openai_replies import DONE, CompletionReply
from forge.openai_schemas import CompletionEnd

END = CompletionEnd(finish_reason="length", prompt_tokens=9, completion_tokens=3)


def events(stream: str) -> list[str]:
    """The data of each event; every event is one `data: ...` line and a blank line."""
    assert stream.endswith("\n\n")
    blocks = stream[:-2].split("\n\n")
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks)
    return [block.removeprefix("data: ") for block in blocks]


def test_a_chat_stream_announces_the_role_sends_pieces_finishes_counts_and_ends():
    reply = CompletionReply("chat", "my-model", created=1700000000)
    stream = reply.start() + reply.piece("Hel") + reply.piece("lo") + reply.finish(END, include_usage=True)
    data = events(stream)
    assert data[-1] == "[DONE]" and stream.endswith(DONE)
    chunks = [SdkChunk.model_validate(json.loads(d)) for d in data[:-1]]
    assert {c.id for c in chunks} == {reply.id} and reply.id.startswith("chatcmpl-")
    assert {(c.model, c.created, c.object) for c in chunks} == {("my-model", 1700000000, "chat.completion.chunk")}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None, None, None, "length"]
    # The usage chunk comes last, with no choices (as OpenAI sends it).
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])


def test_without_include_usage_no_usage_chunk():
    reply = CompletionReply("chat", "m")
    data = events(reply.start() + reply.piece("x") + reply.finish(END, include_usage=False))
    assert data[-1] == "[DONE]"
    assert [json.loads(d)["choices"][0]["finish_reason"] for d in data[:-1]] == [None, None, "length"]


def test_a_text_stream_is_text_completion_chunks():
    reply = CompletionReply("text", "m")
    assert reply.start() == ""
    data = events(reply.piece("Once") + reply.piece(" upon") + reply.finish(END, include_usage=True))
    chunks = [json.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "Once upon"
    # Pieces carry a null finish_reason, as OpenAI streams them (the SDK's strict type wants one only at the end).
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, "length"]
    last = [SdkCompletion.model_validate(c) for c in chunks[-2:]]
    assert last[1].choices == [] and last[1].usage.completion_tokens == 3
    assert {c["object"] for c in chunks} == {"text_completion"} and reply.id.startswith("cmpl-")


def test_whole_replies_read_as_the_sdk_s_types():
    chat = SdkChatCompletion.model_validate(CompletionReply("chat", "m").whole("7", END).model_dump())
    assert chat.choices[0].message.content == "7" and chat.choices[0].message.role == "assistant"
    assert chat.choices[0].finish_reason == "length" and chat.usage.prompt_tokens == 9
    text = SdkCompletion.model_validate(CompletionReply("text", "m").whole("7", END).model_dump())
    assert text.choices[0].text == "7" and text.usage.total_tokens == 12


def test_an_error_after_the_stream_began_is_an_error_event_then_done():
    data = events(CompletionReply("chat", "m").error("the replica died"))
    assert json.loads(data[0]) == {"error": {"message": "the replica died", "type": "server_error", "param": None,
                                             "code": None}}
    assert data[1] == "[DONE]"
