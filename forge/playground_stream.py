"""The playground's streamed generate (POST /api/playground/generate/stream): its request and its events.

A stream is server-sent events: one `event: token` per piece of text as the model
produces it (data `{"text": ...}`), then one `event: done` whose data is the
contract's GenerateResponse (plus `finish_reason`). A failure after the stream
began is one `event: error` in the contract's error shape. The pieces joined are
the `generated_text` of `done`, and of the whole route for a greedy request.
Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from pydantic import BaseModel, Field

from forge.openai_schemas import CompletionJob, FinishReason
from forge.schemas import GenerateRequest, GenerateResponse, error_body

QA_TASK = "extractive-question-answering"


class StreamGenerateRequest(GenerateRequest):
    """Body of POST /api/playground/generate/stream: the generate request, and whether to ask the base."""

    use_base: bool = Field(
        False, description="Answer with the model's base, its adapter switched off, prompted as the model is "
        "(to compare the two side by side). Adapter models only: a merged model has no base beside it.")

    def completion_job(self, task: str) -> CompletionJob:
        """What a Playground replica is asked for: the playground's prompt, or a QA model's passage and question."""
        sampling = {"max_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                    "use_base": self.use_base}
        if task == QA_TASK:
            question = self.question or self.prompt or ""
            return CompletionJob(messages=[{"role": "system", "content": self.context or ""},
                                           {"role": "user", "content": question}], **sampling)
        return CompletionJob(prompt=self.prompt, **sampling)


class GenerateDone(GenerateResponse):
    """The `done` event's data: the contract's response fields, and why the generation ended."""

    finish_reason: FinishReason = Field(description="stop: the model ended (or a QA span); length: max_new_tokens.")


def task_input_problem(task: str, request: GenerateRequest) -> Optional[str]:
    """Why a model trained for `task` cannot answer `request` (None when it can): the message names the fix."""
    if task == QA_TASK and not request.context:
        return ("this model answers questions from a passage: send `context` (and the question in `question` "
                "or `prompt`)")
    if task != QA_TASK and request.prompt is None:
        return f"this {task} model answers a `prompt`; `context` and `question` are for extractive QA models"
    return None


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def token_event(text: str) -> str:
    return _event("token", {"text": text})


def done_event(done: GenerateDone) -> str:
    return _event("done", done.model_dump())


def error_event(status_code: int, error: str, detail: str) -> str:
    return _event("error", error_body(status_code, error, detail))
