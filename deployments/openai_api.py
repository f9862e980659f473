"""The OpenAI-compatible routes under /v1: models, chat completions and text completions, streamed too.

A mixin of the ingress (ApiIngress inherits it; Serve finds inherited routes): each
route resolves the model's name through the TrainingManager and asks a Playground
replica for the completion through a streaming handle (`handle.options(stream=True)`),
which yields the text as the model generates it. A streamed request gets those
pieces as server-sent events; a whole one gets them joined, so both carry the same
text. Built-in bases are listed (what fine-tuning starts from) but answer nothing:
a completion asks a trained model. Errors answer in OpenAI's shape
(deployments/openai_errors.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Union

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from deployments.errors import unwrap
from deployments.openai_errors import OPENAI_ERROR_RESPONSES, OPENAI_PREFIX
from forge.builtin import BUILTIN_MODELS
from forge.errors import BadRequest, ForgeError, NotFound
from forge.openai_replies import CompletionReply
from forge.openai_schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionEnd,
    CompletionJob,
    CompletionRequest,
    ModelObject,
    ModelObjectList,
)

router = APIRouter(prefix=OPENAI_PREFIX, tags=["OpenAI-compatible"], responses=OPENAI_ERROR_RESPONSES)
_STREAMED = {200: {"description": "The completion; with `stream: true`, server-sent events of its chunks, "
                                  "ending with `data: [DONE]`.",
                   "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


def _trained(record: dict[str, Any]) -> ModelObject:
    created = datetime.fromisoformat(record["created_at"].replace("Z", "+00:00"))
    return ModelObject(id=record["name"], created=int(created.timestamp()), owned_by="user", task=record["task"],
                       base_model=record["base_model"], callable=True)


def _bases() -> list[ModelObject]:
    return [ModelObject(id=name, created=0, owned_by="system", callable=False) for name in BUILTIN_MODELS]


def _missing(name: str) -> NotFound:
    return NotFound(f"the model {name!r} does not exist (GET /v1/models lists them)",
                    extra={"param": "model", "code": "model_not_found"})


def _replica_error(error: BaseException, name: str) -> BaseException:
    """A replica's failure as the client should see it: a model whose files are gone does not exist."""
    cause = unwrap(error)
    return _missing(name) if isinstance(cause, FileNotFoundError) else error


async def _events(reply: CompletionReply, pieces: DeploymentResponseGenerator, first: dict[str, Any],
                  include_usage: bool) -> AsyncIterator[str]:
    try:
        yield reply.start()
        item = first
        while "text" in item:
            yield reply.piece(item["text"])
            item = await pieces.__anext__()
        yield reply.finish(CompletionEnd.model_validate(item), include_usage=include_usage)
    except Exception as error:  # the status is sent already: the stream itself says it failed
        cause = unwrap(error)
        yield reply.error(cause.detail if isinstance(cause, ForgeError) else "generation failed; see server logs")
    finally:
        pieces.cancel()  # a client that left stops the replica's generation too


class OpenAIRoutes:
    """The /v1 routes; the ingress provides the manager and the Playground handle."""

    manager: Any
    playground: DeploymentHandle

    @router.get("/models", response_model=ModelObjectList)
    async def openai_models(self) -> ModelObjectList:
        """Trained models by name (callable), then the built-in bases (listed, not callable)."""
        return ModelObjectList(data=[*map(_trained, await self.manager.list_models.remote()), *_bases()])

    @router.get("/models/{model:path}", response_model=ModelObject)
    async def openai_model(self, model: str) -> ModelObject:
        found = [m for m in _bases() if m.id == model] or [
            _trained(r) for r in await self.manager.list_models.remote() if r["name"] == model]
        if not found:
            raise _missing(model)
        return found[0]

    @router.post("/chat/completions", response_model=ChatCompletion, responses=_STREAMED)
    async def chat_completions(self, body: ChatCompletionRequest) -> Union[ChatCompletion, StreamingResponse]:
        """A chat completion: the conversation through the model's chat template (or its task's input)."""
        return await self._complete(CompletionReply("chat", body.model), body, body.to_job())

    @router.post("/completions", response_model=Completion, responses=_STREAMED)
    async def completions(self, body: CompletionRequest) -> Union[Completion, StreamingResponse]:
        """A text completion: the prompt as the playground prompts it."""
        return await self._complete(CompletionReply("text", body.model), body, body.to_job())

    async def _model_record(self, name: str) -> dict[str, Any]:
        if name in BUILTIN_MODELS:
            raise BadRequest(f"{name} is a built-in base model, listed to fine-tune from; completions answer with "
                             "a trained model (owned_by 'user' in GET /v1/models)",
                             extra={"param": "model", "code": "model_not_callable"})
        for record in await self.manager.list_models.remote():
            if record["name"] == name:
                return record
        raise _missing(name)

    async def _complete(self, reply: CompletionReply, body: Union[ChatCompletionRequest, CompletionRequest],
                        job: CompletionJob) -> Union[ChatCompletion, Completion, StreamingResponse]:
        record = await self._model_record(body.model)
        if problem := job.task_input_problem(record["task"]):
            raise BadRequest(problem, extra={"param": "messages" if job.messages is not None else "prompt"})
        pieces = self.playground.options(multiplexed_model_id=str(record["id"]), stream=True).complete.remote(job)
        try:
            # The first item (the model loaded, generation begun) before any status is sent: a failure
            # to load is still an HTTP error.
            first = await pieces.__anext__()
        except Exception as error:
            raise _replica_error(error, body.model) from None
        if body.stream:
            return StreamingResponse(_events(reply, pieces, first, body.include_usage()),
                                     media_type="text/event-stream")
        texts, item = [], first
        try:
            while "text" in item:
                texts.append(item["text"])
                item = await pieces.__anext__()
        except Exception as error:
            raise _replica_error(error, body.model) from None
        return reply.whole("".join(texts), CompletionEnd.model_validate(item))
