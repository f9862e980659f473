"""Answer a completion job (the OpenAI-compatible /v1 routes) with a loaded model, text streamed as generated.

Runs in a playground replica. The input becomes the model's prompt through
`forge.modeling.prompts` (as in training and in the playground):
- text generation: a conversation through the chat template (our markers without
  one); a text completion's prompt exactly as the playground prompts it;
- summarization: the text of the last user message (or the prompt) to summarize;
- extractive QA: the passage from the system message(s), the question from the
  last user message; the answer is the span, sent as one piece.
"""

from __future__ import annotations

import threading
from typing import Callable

from forge.modeling.batch_generation import Continuation
from forge.modeling.prompts import chat_prompt
from forge.modeling.qa_spans import WINDOW_TOKENS, answer_questions
from forge.openai_schemas import CompletionEnd, CompletionJob
from forge.playground.responder import LoadedModel, prompt_text


def job_prompt(loaded: LoadedModel, job: CompletionJob) -> str:
    """The prompt a generative model is sent for the job's input."""
    if job.messages is None:
        return prompt_text(loaded.kind, loaded.task, job.prompt or "", loaded.tokenizer)
    if loaded.kind == "causal-lm" and loaded.task == "text-generation":
        return chat_prompt(loaded.task, job.messages, loaded.tokenizer)
    return prompt_text(loaded.kind, loaded.task, job.last_user_text(), loaded.tokenizer)


def complete(loaded: LoadedModel, job: CompletionJob, emit: Callable[[str], None],
             halt: threading.Event) -> CompletionEnd:
    """Hand the answer's text to `emit` piece by piece; return how it ended and its token counts."""
    if loaded.kind == "question-answering":
        question, context = job.last_user_text(), job.system_text()
        span = answer_questions(loaded.model, loaded.tokenizer, [{"question": question, "context": context}],
                                max_length=WINDOW_TOKENS)[0]
        if span.text:
            emit(span.text)
        count = lambda text: len(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        return CompletionEnd(finish_reason="stop", prompt_tokens=count(question) + count(context),
                             completion_tokens=count(span.text) if span.text else 0, score=span.score)
    continued = loaded.continue_text(Continuation(
        job_prompt(loaded, job), job.max_tokens, temperature=job.temperature, top_p=job.top_p, seed=job.seed,
        stop=job.stop, emit=emit, halt=halt))
    return CompletionEnd(finish_reason=continued.finish_reason, prompt_tokens=continued.prompt_tokens,
                         completion_tokens=continued.completion_tokens, prompt_truncated=continued.prompt_truncated,
                         text_tokens=continued.text_tokens)
