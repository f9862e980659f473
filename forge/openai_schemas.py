"""The OpenAI-compatible subset under /v1: typed requests, responses and errors.

The fields are OpenAI's, as its SDK sends and reads them. A parameter this service
cannot honour (n > 1, tools, images, logprobs, penalties, ...) is refused with a
message that names it (a 400 whose `param` is the field), never silently ignored;
fields that change nothing about the answer (`user`, `metadata`, `store`, ...) are
accepted and ignored. A request becomes a `CompletionJob`, what a Playground
replica is asked for.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from forge.schemas import MAX_NEW_TOKENS_CAP

DEFAULT_MAX_TOKENS = 256
MAX_STOP_SEQUENCES = 4
FinishReason = Literal["stop", "length"]


def _refuse_if(condition: bool, message: str) -> None:
    if condition:
        raise ValueError(message)


# Parameters accepted only at values that change nothing this service cannot do: field -> (accepted?, why not).
_ONLY_IF: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (lambda v: v in (None, 1), "only n=1 is supported: send one request per choice"),
    "stop": (lambda v: not isinstance(v, list) or len(v) <= MAX_STOP_SEQUENCES,
             f"at most {MAX_STOP_SEQUENCES} stop sequences"),
    "logprobs": (lambda v: v in (None, False, 0), "logprobs are not supported"),
    "frequency_penalty": (lambda v: v in (None, 0), "penalties are not supported (only 0)"),
    "presence_penalty": (lambda v: v in (None, 0), "penalties are not supported (only 0)"),
    "logit_bias": (lambda v: not v, "logit_bias is not supported"),
    "tools": (lambda v: not v, "tools (function calling) are not supported"),
    "functions": (lambda v: not v, "tools (function calling) are not supported"),
    "tool_choice": (lambda v: v in (None, "none"), "tools (function calling) are not supported"),
    "function_call": (lambda v: v in (None, "none"), "tools (function calling) are not supported"),
    "response_format": (lambda v: v is None or v.get("type") == "text", 'only response_format {"type": "text"}'),
    "modalities": (lambda v: v is None or v == ["text"], 'only modalities ["text"]'),
    "audio": (lambda v: v is None, "audio output is not supported"),
    "echo": (lambda v: not v, "echo is not supported"),
    "suffix": (lambda v: not v, "suffix (insertion) is not supported"),
    "best_of": (lambda v: v in (None, 1), "only best_of=1 is supported"),
}


def _only_supported(cls: type, value: Any, info: ValidationInfo) -> Any:
    accepted, why = _ONLY_IF[info.field_name]
    _refuse_if(not accepted(value), why)
    return value


class StreamOptions(BaseModel):
    include_usage: bool = Field(False, description="Send a last chunk with the token counts (and no choices).")


class _Sampling(BaseModel):
    """What chat and text completions share: the model, sampling, stopping, streaming."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="A registered model's name (GET /v1/models).")
    temperature: float = Field(1.0, ge=0, le=2, description="0 means greedy decoding.")
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: Optional[int] = Field(None, ge=1, le=MAX_NEW_TOKENS_CAP,
                                      description=f"New tokens at most (default {DEFAULT_MAX_TOKENS}).")
    stop: Union[str, list[str], None] = Field(
        None, description=f"Up to {MAX_STOP_SEQUENCES} sequences; the text ends before the first one generated.")
    seed: Optional[int] = Field(None, ge=0, le=2**63 - 1,
                                description="Seeds sampling: repeatable on one replica, best effort across them.")
    n: Optional[int] = Field(1, description="Only 1: one choice per request.")
    stream: Optional[bool] = False
    stream_options: Optional[StreamOptions] = None
    logprobs: Optional[Any] = Field(None, description="Not supported.")
    frequency_penalty: Optional[float] = Field(None, description="Not supported (only 0).")
    presence_penalty: Optional[float] = Field(None, description="Not supported (only 0).")
    logit_bias: Optional[dict[str, Any]] = Field(None, description="Not supported.")
    user: Optional[str] = Field(None, description="Accepted and ignored.")

    _sampling_supported = field_validator("n", "stop", "logprobs", "frequency_penalty", "presence_penalty",
                                 "logit_bias")(classmethod(_only_supported))






    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def _job(self, max_tokens: Optional[int], **task_input: Any) -> "CompletionJob":
        return CompletionJob(max_tokens=max_tokens or self.max_tokens or DEFAULT_MAX_TOKENS,
                             temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop=self.stops(),
                             **task_input)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="`developer` is read as `system`; tool messages are not supported.")
    content: Union[str, list[dict[str, Any]]] = Field(description="Text, or a list of text parts.")
    name: Optional[str] = None

    @field_validator("content")
    @classmethod
    def _text_only(cls, value: Union[str, list[dict[str, Any]]]) -> Union[str, list[dict[str, Any]]]:
        if isinstance(value, list):
            kinds = sorted({str(part.get("type")) for part in value if part.get("type") != "text"})
            _refuse_if(bool(kinds), f"only text content is supported, not {', '.join(kinds)}")
            _refuse_if(any(not isinstance(part.get("text"), str) for part in value), "a text part needs `text`")
        return value

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part["text"] for part in self.content)


class ChatCompletionRequest(_Sampling):
    """Body of POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=MAX_NEW_TOKENS_CAP,
                                                 description="Wins over `max_tokens` when both are sent.")
    tools: Optional[list[Any]] = Field(None, description="Not supported.")
    tool_choice: Optional[Any] = Field(None, description="Not supported.")
    functions: Optional[list[Any]] = Field(None, description="Not supported.")
    function_call: Optional[Any] = Field(None, description="Not supported.")
    response_format: Optional[dict[str, Any]] = Field(None, description='Only {"type": "text"}.')
    modalities: Optional[list[str]] = Field(None, description='Only ["text"].')
    audio: Optional[Any] = Field(None, description="Not supported.")

    _chat_supported = field_validator("tools", "functions", "tool_choice", "function_call", "response_format",
                                 "modalities", "audio")(classmethod(_only_supported))






    def to_job(self) -> "CompletionJob":
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in self.messages]
        return self._job(self.max_completion_tokens, messages=messages)


class CompletionRequest(_Sampling):
    """Body of POST /v1/completions."""

    prompt: Union[str, list[str]] = Field(description="One text (a list holding one text is accepted too).")
    echo: Optional[bool] = Field(None, description="Not supported.")
    suffix: Optional[str] = Field(None, description="Not supported.")
    best_of: Optional[int] = Field(None, description="Only 1.")

    _text_supported = field_validator("echo", "suffix", "best_of")(classmethod(_only_supported))

    @field_validator("prompt")
    @classmethod
    def _one_text(cls, value: Union[str, list[str]]) -> Union[str, list[str]]:
        texts = [value] if isinstance(value, str) else value
        _refuse_if(len(texts) != 1, "send one prompt per request (n and batched prompts are not supported)")
        _refuse_if(not texts[0].strip(), "must not be blank")
        return value




    def to_job(self) -> "CompletionJob":
        return self._job(None, prompt=self.prompt if isinstance(self.prompt, str) else self.prompt[0])


class CompletionJob(BaseModel):
    """What the ingress asks a Playground replica for: the input (a conversation or one text) and sampling."""

    messages: Optional[list[dict[str, str]]] = Field(None, description="Chat: role/content, roles system|user|assistant.")
    prompt: Optional[str] = Field(None, description="Text completion: the user's text, prompted as the playground does.")
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=MAX_NEW_TOKENS_CAP)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: Optional[int] = None
    stop: list[str] = Field(default_factory=list)
    # The playground's comparison (POST /api/playground/generate/stream): the same prompt to the
    # model's base, its adapter switched off.
    use_base: bool = Field(False, description="Answer with the base model, the adapter switched off.")

    def task_input_problem(self, task: str) -> Optional[str]:
        """Why a model of `task` cannot answer this input (None when it can): the message names the fix."""
        if task == "extractive-question-answering":
            if self.messages is None:
                return ("an extractive QA model answers through /v1/chat/completions: the passage in a system "
                        "message, the question in the last user message")
            if not any(m["role"] == "system" and m["content"].strip() for m in self.messages):
                return "an extractive QA model needs the passage to answer from in a system message"
        if self.messages is not None and not any(m["role"] == "user" and m["content"].strip()
                                                 for m in self.messages):
            return "send at least one user message with text"
        return None

    def last_user_text(self) -> str:
        return next(m["content"] for m in reversed(self.messages or []) if m["role"] == "user")

    def system_text(self) -> str:
        return "\n".join(m["content"].strip() for m in self.messages or [] if m["role"] == "system")


class CompletionEnd(BaseModel):
    """A replica's last message on a completion stream, after the text pieces."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    # What the playground's streamed generate reports besides (the /v1 replies leave them out).
    prompt_truncated: bool = False
    score: Optional[float] = None
    text_tokens: Optional[int] = Field(None, description="completion_tokens less special ones; None: the same.")


# --------------------------------------------------------------------- responses


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class _Choice(BaseModel):
    index: int = 0
    finish_reason: Optional[FinishReason] = Field(None, description="Set on the last choice of a stream.")
    logprobs: None = None


class _Reply(BaseModel):
    """What every completion object and stream chunk carries (`usage`: on a stream, only its last chunk's)."""

    id: str
    created: int = Field(description="Unix seconds.")
    model: str
    usage: Optional[Usage] = None


class ChatChoice(_Choice):
    message: AssistantMessage
    finish_reason: FinishReason


class ChatCompletion(_Reply):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]
    usage: Usage


class TextChoice(_Choice):
    text: str


class Completion(_Reply):
    """A whole text completion, and each chunk of a streamed one."""

    object: Literal["text_completion"] = "text_completion"
    choices: list[TextChoice]


class ChunkDelta(BaseModel):
    role: Optional[Literal["assistant"]] = None
    content: Optional[str] = None


class ChunkChoice(_Choice):
    delta: ChunkDelta


class ChatCompletionChunk(_Reply):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]


class ModelObject(BaseModel):
    id: str = Field(description="The model's unique name; built-in bases are named forge/<name>.")
    object: Literal["model"] = "model"
    created: int = Field(description="Unix seconds (0 for built-in bases).")
    owned_by: str = Field(description="`user` for trained models; `system` for built-in bases.")
    task: Optional[str] = Field(None, description="What a trained model answers (null for a base).")
    base_model: Optional[str] = None
    callable: bool = Field(description="Whether completions can be asked of it (built-in bases: no).")


class ModelObjectList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class OpenAIErrorResponse(BaseModel):
    error: OpenAIErrorDetail
