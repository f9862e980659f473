"""POST /api/playground/generate/stream: the playground's answer as server-sent events, token by token.

A mixin of the ingress (ApiIngress inherits it), like the /v1 routes: it asks a
Playground replica through the same streaming handle (`Playground.complete`), so
the tokens are the ones the whole route returns. The model's record is checked
and the first item awaited before any status is sent: an unknown model is a 404,
a wrong input a 400, as on the whole route. A client that leaves mid-stream
cancels the replica's generation (it ends at the next token).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from deployments.errors import unwrap
from forge.errors import BadRequest, ForgeError, NotFound
from forge.openai_schemas import CompletionEnd
from forge.playground_stream import (
    GenerateDone,
    StreamGenerateRequest,
    done_event,
    error_event,
    task_input_problem,
    token_event,
)

router = APIRouter()
_STREAMED = {200: {"description": "Server-sent events: `token` events (`{\"text\": ...}`) as the model produces "
                                  "them, then one `done` event (the GenerateResponse fields and `finish_reason`), "
                                  "or an `error` event (the error shape) if generation failed midway.",
                   "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


async def _events(pieces: DeploymentResponseGenerator, first: dict[str, Any], model_id: int,
                  started: float) -> AsyncIterator[str]:
    try:
        texts, item = [], first
        while "text" in item:
            texts.append(item["text"])
            yield token_event(item["text"])
            item = await pieces.__anext__()
        end = CompletionEnd.model_validate(item)
        yield done_event(GenerateDone(
            generated_text="".join(texts), model_id=model_id,
            tokens_generated=end.completion_tokens if end.text_tokens is None else end.text_tokens,
            generation_time_ms=round((time.perf_counter() - started) * 1000, 2), score=end.score,
            prompt_truncated=end.prompt_truncated, finish_reason=end.finish_reason))
    except Exception as error:  # the status is sent already: the stream itself says it failed
        cause = unwrap(error)
        if isinstance(cause, ForgeError):
            yield error_event(cause.status_code, cause.error, cause.detail)
        else:
            yield error_event(500, "Internal server error", "generation failed; see server logs")
    finally:
        pieces.cancel()  # a client that left stops the replica's generation too


class PlaygroundStreamRoutes:
    """The streamed playground route; the ingress provides the manager and the Playground handle."""

    manager: Any
    playground: DeploymentHandle

    @router.post("/api/playground/generate/stream", response_class=StreamingResponse, response_model=None,
                 responses=_STREAMED)
    async def generate_stream(self, body: StreamGenerateRequest) -> StreamingResponse:
        """Generate as /api/playground/generate does, streamed: each piece of text as the model produces it.

        With `use_base`, the model's base answers instead (its adapter switched off), prompted the same way.
        """
        started = time.perf_counter()
        model = await self.manager.get_model.remote(body.model_id)
        if problem := task_input_problem(model["task"], body):
            raise BadRequest(problem)
        if body.use_base and model["kind"] == "merged":
            raise BadRequest("`use_base`: a merged model has no separate base to compare with")
        handle = self.playground.options(multiplexed_model_id=str(body.model_id), stream=True)
        pieces = handle.complete.remote(body.completion_job(model["task"]))
        try:
            first = await pieces.__anext__()
        except Exception as error:
            if isinstance(unwrap(error), FileNotFoundError):  # deleted since the lookup
                raise NotFound(f"model {body.model_id} does not exist") from None
            raise
        return StreamingResponse(_events(pieces, first, body.model_id, started), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
