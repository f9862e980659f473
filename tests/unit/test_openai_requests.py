"""The /v1 request subset: what is refused (naming the parameter) and what a request asks a replica for.

The refusals are pydantic validation errors; the ingress turns each into a 400 whose
`param` is the field (tests/integration/test_openai_sdk.py sees the SDK raise it).
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from forge.openai_schemas import DEFAULT_MAX_TOKENS, ChatCompletionRequest, CompletionJob, CompletionRequest

HELLO = [{"role": "user", "content": "What is 3 plus 4?"}]


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": HELLO, **fields})


def refused_field(build: Any, **fields: Any) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        build(**fields)
    error = caught.value.errors()[0]
    return str(error["loc"][0]), error["msg"]


@pytest.mark.parametrize("fields,param,why", [
    ({"n": 2}, "n", "only n=1"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "not supported"),
    ({"tool_choice": "auto"}, "tool_choice", "not supported"),
    ({"functions": [{"name": "f"}]}, "functions", "not supported"),
    ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}, "messages", "image_url"),
    ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "x"}]}, "messages", "Input should be"),
    ({"messages": []}, "messages", "at least 1"),
    ({"temperature": -1}, "temperature", "greater than or equal to 0"),
    ({"temperature": 2.5}, "temperature", "less than or equal to 2"),
    ({"top_p": 0}, "top_p", "greater than 0"),
    ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ({"logprobs": True}, "logprobs", "not supported"),
    ({"presence_penalty": 0.5}, "presence_penalty", "not supported"),
    ({"logit_bias": {"50": 10}}, "logit_bias", "not supported"),
    ({"response_format": {"type": "json_object"}}, "response_format", "text"),
])
def test_chat_refuses_what_it_cannot_honour_naming_the_parameter(fields: dict, param: str, why: str):
    field, message = refused_field(chat, **fields)
    assert field == param and why in message


@pytest.mark.parametrize("fields,param", [
    ({"prompt": ["one", "two"]}, "prompt"), ({"prompt": "  "}, "prompt"), ({"echo": True}, "echo"),
    ({"suffix": "end"}, "suffix"), ({"best_of": 3}, "best_of"), ({"n": 3}, "n"),
])
def test_text_completions_refuse_what_they_cannot_honour(fields: dict, param: str):
    build = lambda **f: CompletionRequest.model_validate({"model": "m", "prompt": "hi", **f})  # noqa: E731
    assert refused_field(build, **fields)[0] == param


def test_harmless_fields_are_accepted_and_defaults_are_openai_s():
    request = chat(user="someone", metadata={"k": "v"}, store=False, n=1, tool_choice="none",
                   frequency_penalty=0, response_format={"type": "text"}, stream_options={"include_usage": True})
    job = request.to_job()
    assert job.temperature == 1.0 and job.top_p == 1.0 and job.max_tokens == DEFAULT_MAX_TOKENS
    assert request.include_usage() and not request.stream


def test_a_chat_request_maps_onto_a_replica_job():
    request = chat(messages=[{"role": "developer", "content": "Be brief."},
                             {"role": "user", "content": [{"type": "text", "text": "What is "},
                                                          {"type": "text", "text": "3 plus 4?"}]}],
                   temperature=0, top_p=0.5, max_tokens=10, max_completion_tokens=7, stop="\n", seed=3)
    job = request.to_job()
    assert job.messages == [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "What is 3 plus 4?"}]
    assert job.prompt is None
    # max_completion_tokens (the newer name) wins over max_tokens; one stop string becomes a list.
    assert (job.max_tokens, job.temperature, job.top_p, job.stop, job.seed) == (7, 0, 0.5, ["\n"], 3)


def test_a_text_completion_maps_onto_a_replica_job():
    job = CompletionRequest(model="m", prompt=["Once upon"], max_tokens=5, stop=["a", "b"]).to_job()
    assert (job.prompt, job.messages, job.max_tokens, job.stop) == ("Once upon", None, 5, ["a", "b"])


@pytest.mark.parametrize("task,job,problem", [
    ("extractive-question-answering", CompletionJob(prompt="Who?"), "/v1/chat/completions"),
    ("extractive-question-answering", CompletionJob(messages=HELLO), "system message"),
    ("text-generation", CompletionJob(messages=[{"role": "system", "content": "x"}]), "user message"),
])
def test_a_task_s_input_that_cannot_be_answered_says_what_to_send(task: str, job: CompletionJob, problem: str):
    assert problem in job.task_input_problem(task)


def test_what_each_task_can_answer():
    qa = CompletionJob(messages=[{"role": "system", "content": "Paris is in France."},
                                 {"role": "user", "content": "Where is Paris?"}])
    assert qa.task_input_problem("extractive-question-answering") is None
    assert (qa.system_text(), qa.last_user_text()) == ("Paris is in France.", "Where is Paris?")
    for task in ("text-generation", "summarization"):
        assert CompletionJob(prompt="text").task_input_problem(task) is None
        assert CompletionJob(messages=HELLO).task_input_problem(task) is None
