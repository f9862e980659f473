"""Completions as a replica streams them: the same text as the playground's whole generation, cut at stops.

Real transformers on the built-in tiny Llama (untrained, so it babbles, which is all
greedy equality needs) and tiny T5; no Ray: `complete` is what the Playground
deployment's streaming method runs in a thread.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from forge.modeling.generation import generate_texts
from forge.openai_schemas import CompletionJob
from forge.playground.completions import complete, job_prompt
from forge.playground.responder import load_base_model, respond
from forge.schemas import GenerateRequest

QUESTION = "What is 3 plus 4?"


@pytest.fixture(scope="module")
def llama(builtin_dir: Path):
    return load_base_model("forge/tiny-llama", builtin_dir, "text-generation")


def streamed(loaded, job: CompletionJob) -> tuple[list[str], object]:
    pieces: list[str] = []
    end = complete(loaded, job, pieces.append, threading.Event())
    return pieces, end


def test_a_one_message_chat_is_prompted_and_answered_as_the_playground_answers(llama):
    job = CompletionJob(messages=[{"role": "user", "content": QUESTION}], max_tokens=20, temperature=0)
    playground = respond(llama, GenerateRequest(model_id=1, prompt=QUESTION, max_new_tokens=20, temperature=0))
    pieces, end = streamed(llama, job)
    assert len(pieces) > 1, "the text should arrive in pieces as it is generated"
    assert "".join(pieces) == playground["generated_text"]
    assert job_prompt(llama, job) == job_prompt(llama, CompletionJob(prompt=QUESTION))
    assert end.prompt_tokens == len(llama.tokenizer(job_prompt(llama, job))["input_ids"])
    assert end.completion_tokens == 20 and end.finish_reason == "length"


def test_a_conversation_goes_through_the_chat_markers(llama):
    job = CompletionJob(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                  {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Sum?"}])
    prompt = job_prompt(llama, job)
    assert prompt.startswith("### System:\nBe brief.") and prompt.endswith("### Instruction:\nSum?\n\n### Response:\n")


def test_a_stop_sequence_cuts_the_text_and_ends_generation(llama):
    whole = "".join(streamed(llama, CompletionJob(prompt=QUESTION, max_tokens=30, temperature=0))[0])
    stop = whole[len(whole) // 2:len(whole) // 2 + 3]
    assert stop.strip(), whole
    pieces, end = streamed(llama, CompletionJob(prompt=QUESTION, max_tokens=30, temperature=0, stop=[stop]))
    assert "".join(pieces) == whole[:whole.index(stop)]
    assert end.finish_reason == "stop" and end.completion_tokens < 30


def test_a_seed_makes_sampling_repeatable(llama):
    job = CompletionJob(prompt=QUESTION, max_tokens=15, temperature=1.0, seed=7)
    first, second = ("".join(streamed(llama, job)[0]) for _ in range(2))
    assert first == second
    others = {"".join(streamed(llama, job.model_copy(update={"seed": seed}))[0]) for seed in range(8, 12)}
    assert others - {first}, "other seeds should sample other texts"


def test_a_halt_ends_the_generation_early(llama):
    halt = threading.Event()
    pieces: list[str] = []

    def emit(text: str) -> None:
        pieces.append(text)
        halt.set()  # the client left after the first piece

    end = complete(llama, CompletionJob(prompt=QUESTION, max_tokens=200, temperature=0), emit, halt)
    assert end.completion_tokens < 200 and len(pieces) == 1


def test_summarization_takes_the_last_user_message_as_its_text(builtin_dir: Path):
    t5 = load_base_model("forge/tiny-t5", builtin_dir, "summarization", "seq2seq-lm")
    article = "The council met on Monday and voted to repair the bridge."
    job = CompletionJob(messages=[{"role": "user", "content": article}], max_tokens=12, temperature=0)
    assert job_prompt(t5, job) == "summarize: " + article
    whole = generate_texts(t5.model, t5.tokenizer, [job_prompt(t5, job)], max_new_tokens=12, seq2seq=True)[0]
    assert "".join(streamed(t5, job)[0]) == whole.text


def test_extractive_qa_reads_the_passage_from_the_system_message_and_the_question_from_the_user(builtin_dir: Path):
    bert = load_base_model("forge/tiny-bert", builtin_dir, "extractive-question-answering", "question-answering")
    passage = "The bridge over the river was built in 1901 by the town council."
    job = CompletionJob(messages=[{"role": "system", "content": passage},
                                  {"role": "user", "content": "When was the bridge built?"}])
    playground = respond(bert, GenerateRequest(model_id=1, context=passage, question="When was the bridge built?"))
    pieces, end = streamed(bert, job)
    assert "".join(pieces) == playground["generated_text"] and playground["generated_text"] in passage
    assert len(pieces) <= 1 and end.finish_reason == "stop"
    assert end.completion_tokens == playground["tokens_generated"]
