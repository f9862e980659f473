"""A completion's reply in OpenAI's shape: whole, or streamed as server-sent events.

A stream is `data: <chunk JSON>` events: (chat) a first chunk with the assistant's
role, one chunk per piece of text, a chunk with an empty delta and the
finish_reason, (with include_usage) a chunk with no choices and the token counts,
then `data: [DONE]`. An error after the stream began is an `data: {"error": ...}`
event (the SDK raises it), then `data: [DONE]`. Pure: no I/O.
"""

from __future__ import annotations

import secrets
import time
from typing import Literal, Optional

from pydantic import BaseModel

from forge.openai_schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    Completion,
    CompletionEnd,
    OpenAIErrorDetail,
    OpenAIErrorResponse,
    TextChoice,
    Usage,
)

DONE = "data: [DONE]\n\n"
Kind = Literal["chat", "text"]


def sse(payload: BaseModel) -> str:
    return f"data: {payload.model_dump_json()}\n\n"


def usage_of(end: CompletionEnd) -> Usage:
    return Usage(prompt_tokens=end.prompt_tokens, completion_tokens=end.completion_tokens,
                 total_tokens=end.prompt_tokens + end.completion_tokens)


class CompletionReply:
    """One completion's id, time and model, and every shape its reply takes."""

    def __init__(self, kind: Kind, model: str, *, created: Optional[int] = None) -> None:
        self.kind = kind
        self.model = model
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(12)
        self.created = int(time.time()) if created is None else created

    # ------------------------------------------------------------------ whole

    def whole(self, text: str, end: CompletionEnd) -> ChatCompletion | Completion:
        if self.kind == "chat":
            choice = ChatChoice(message=AssistantMessage(content=text), finish_reason=end.finish_reason)
            return ChatCompletion(id=self.id, created=self.created, model=self.model, choices=[choice],
                                  usage=usage_of(end))
        return Completion(id=self.id, created=self.created, model=self.model,
                          choices=[TextChoice(text=text, finish_reason=end.finish_reason)], usage=usage_of(end))

    # --------------------------------------------------------------- streamed

    def start(self) -> str:
        """The first event: a chat stream announces the assistant's role; a text stream has none ("")."""
        return self._chunk(ChunkDelta(role="assistant", content="")) if self.kind == "chat" else ""

    def piece(self, text: str) -> str:
        return self._chunk(ChunkDelta(content=text)) if self.kind == "chat" else self._chunk(text=text)

    def finish(self, end: CompletionEnd, *, include_usage: bool) -> str:
        """The closing events: the finish reason, the usage when asked for, and [DONE]."""
        if self.kind == "chat":
            events = self._chunk(ChunkDelta(), finish_reason=end.finish_reason)
        else:
            events = self._chunk(text="", finish_reason=end.finish_reason)
        if include_usage:
            events += self._usage_chunk(usage_of(end))
        return events + DONE

    def error(self, message: str) -> str:
        """A failure after the stream began (its status is already sent): an error event, then [DONE]."""
        body = OpenAIErrorResponse(error=OpenAIErrorDetail(message=message, type="server_error"))
        return sse(body) + DONE

    def _chunk(self, delta: Optional[ChunkDelta] = None, *, text: Optional[str] = None,
               finish_reason: Optional[str] = None) -> str:
        if self.kind == "chat":
            return sse(ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                           choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)]))
        return sse(Completion(id=self.id, created=self.created, model=self.model,
                              choices=[TextChoice(text=text or "", finish_reason=finish_reason)]))

    def _usage_chunk(self, usage: Usage) -> str:
        if self.kind == "chat":
            return sse(ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=[],
                                           usage=usage))
        return sse(Completion(id=self.id, created=self.created, model=self.model, choices=[], usage=usage))
