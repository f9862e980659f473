"""The streamed generate's request and its server-sent events (forge/playground_stream.py)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from forge.playground_stream import (
    GenerateDone,
    StreamGenerateRequest,
    done_event,
    error_event,
    task_input_problem,
    token_event,
)


def parse(event: str) -> tuple[str, dict]:
    name_line, data_line, *rest = event.split("\n")
    assert rest == ["", ""]  # an event ends with a blank line
    return name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))


def test_events_carry_their_name_and_json_data():
    assert parse(token_event("a\nb")) == ("token", {"text": "a\nb"})  # a newline stays inside the JSON
    done = GenerateDone(generated_text="7", tokens_generated=1, generation_time_ms=3.5, model_id=2,
                        finish_reason="stop")
    name, data = parse(done_event(done))
    assert name == "done" and data["generated_text"] == "7" and data["finish_reason"] == "stop"
    assert {"generated_text", "tokens_generated", "generation_time_ms"} <= data.keys()
    assert parse(error_event(500, "Internal server error", "boom")) == (
        "error", {"error": "Internal server error", "detail": "boom", "status_code": 500})


def test_the_request_becomes_the_replicas_job_per_task():
    request = StreamGenerateRequest(model_id=1, prompt="Hi", max_new_tokens=5, temperature=0, top_p=0.5, use_base=True)
    job = request.completion_job("text-generation")
    assert (job.prompt, job.messages, job.max_tokens, job.temperature, job.top_p, job.use_base) == (
        "Hi", None, 5, 0, 0.5, True)
    qa = StreamGenerateRequest(model_id=1, context="Paris is in France.", question="Where is Paris?")
    job = qa.completion_job("extractive-question-answering")
    assert job.system_text() == "Paris is in France." and job.last_user_text() == "Where is Paris?"


def test_a_task_names_the_input_it_needs():
    assert task_input_problem("text-generation", StreamGenerateRequest(model_id=1, prompt="Hi")) is None
    assert "`context`" in task_input_problem("extractive-question-answering",
                                             StreamGenerateRequest(model_id=1, prompt="Hi"))
    assert "`prompt`" in task_input_problem("summarization",
                                            StreamGenerateRequest(model_id=1, context="c", question="q"))


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError):
        StreamGenerateRequest(model_id=1, prompt="Hi", stream=True)
