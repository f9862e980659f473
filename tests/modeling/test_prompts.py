"""Prompt formats per task, and the promise behind them: the playground prompts a model for
a row's input exactly as training prompted it with that row.

Real tokenizers: the built-in tiny Llama's (it has no chat template) and a copy of it
given a small chat template, rendered by transformers; TRL's own `apply_chat_template`
renders a conversational training example the way SFTTrainer does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from forge.modeling.loading import load_tokenizer
from forge.modeling.prompts import causal_example, prompt_for, preference_rows, render_chat, seq2seq_example
from forge.playground.responder import prompt_text

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")

PAIR = {"input": "  What is 3 plus 4?\n", "output": " 7 \n"}
ARTICLE = {"input": "The council met on Monday and voted to repair the bridge. ", "output": "Bridge to be repaired."}
CHAT = {"messages": [{"role": "user", "content": " What is 3 plus 4? "}, {"role": "assistant", "content": "7"}]}


@pytest.fixture(scope="module")
def plain(builtin_dir: Path):
    tokenizer = load_tokenizer("forge/tiny-llama", builtin_dir)
    assert not tokenizer.chat_template
    return tokenizer


@pytest.fixture(scope="module")
def chat(builtin_dir: Path):
    tokenizer = load_tokenizer("forge/tiny-llama", builtin_dir)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def trained_prompt(example: dict, tokenizer) -> str:
    """The prompt text a causal training example puts before its completion."""
    if isinstance(example["prompt"], str):
        return example["prompt"]
    from trl.data_utils import apply_chat_template

    return apply_chat_template(example, tokenizer)["prompt"]  # as SFTTrainer renders conversational rows


# --- formats -----------------------------------------------------------------


def test_text_generation_without_a_chat_template_uses_instruction_markers(plain):
    expected = "### Instruction:\nWhat is 3 plus 4?\n\n### Response:\n"
    assert prompt_for("text-generation", PAIR["input"]) == expected
    assert prompt_text("causal-lm", "text-generation", PAIR["input"], plain) == expected
    assert causal_example("text-generation", PAIR, chat_template=False) == {"prompt": expected, "completion": "7"}


def test_text_generation_with_a_chat_template_uses_the_template(chat):
    assert prompt_text("causal-lm", "text-generation", PAIR["input"], chat) == (
        "<|user|>\nWhat is 3 plus 4?</s>\n<|assistant|>\n")
    # Training hands TRL the conversation itself; TRL applies the template.
    assert causal_example("text-generation", PAIR, chat_template=True) == {
        "prompt": [{"role": "user", "content": "What is 3 plus 4?"}],
        "completion": [{"role": "assistant", "content": "7"}],
    }


def test_summarization_prompts_causal_and_seq2seq(plain, chat):
    causal = "### Summarize:\nThe council met on Monday and voted to repair the bridge.\n\n### Summary:\n"
    assert causal_example("summarization", ARTICLE, chat_template=False)["prompt"] == causal
    # A chat template is for conversations: a summarizer keeps its markers.
    assert prompt_text("causal-lm", "summarization", ARTICLE["input"], chat) == causal
    assert seq2seq_example("summarization", ARTICLE) == {
        "source": "summarize: The council met on Monday and voted to repair the bridge.",
        "target": "Bridge to be repaired.",
    }


def test_chat_messages_render_with_roles_and_end_ready_for_the_reply():
    messages = [{"role": "system", "content": "Be brief. "}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": " Hello! "}, {"role": "user", "content": "3 plus 4?"}]
    assert render_chat(messages) == ("### System:\nBe brief.\n\n### Instruction:\nHi\n\n### Response:\nHello!\n\n"
                                     "### Instruction:\n3 plus 4?\n\n### Response:\n")
    example = causal_example("text-generation", {"messages": [*messages, {"role": "assistant", "content": "7 "}]},
                             chat_template=False)
    assert example == {"prompt": render_chat(messages), "completion": "7"}


@pytest.mark.parametrize("template", [False, True])
def test_a_text_row_is_trained_as_it_is(template):
    # TRL's "text" field: no prompt markers, no chat template, the whole text is the target.
    row = {"text": "  The fjord was calm.\nThe boats were out.  "}
    assert causal_example("text-generation", row, chat_template=template) == {"text": row["text"]}


def test_preference_rows_format_the_prompt_and_keep_the_answers(plain, chat):
    rows = [{"prompt": " What is 3 plus 4? ", "chosen": "7", "rejected": "12"}]
    assert preference_rows("text-generation", rows, plain) == [
        {"prompt": "### Instruction:\nWhat is 3 plus 4?\n\n### Response:\n", "chosen": "7", "rejected": "12"}]
    assert preference_rows("text-generation", rows, chat)[0]["prompt"] == (
        "<|user|>\nWhat is 3 plus 4?</s>\n<|assistant|>\n")


# --- the playground prompts as training did ------------------------------------------


@pytest.mark.parametrize("template", [False, True], ids=["markers", "chat-template"])
@pytest.mark.parametrize("task, row, user_text", [
    ("text-generation", PAIR, PAIR["input"]),
    ("text-generation", CHAT, CHAT["messages"][0]["content"]),
    ("summarization", ARTICLE, ARTICLE["input"]),
], ids=["pairs", "chat", "summarization"])
def test_a_causal_model_is_prompted_as_it_was_trained(task, row, user_text, template, plain, chat):
    tokenizer = chat if template else plain
    example = causal_example(task, row, chat_template=template)
    assert prompt_text("causal-lm", task, user_text, tokenizer) == trained_prompt(example, tokenizer)


def test_a_seq2seq_model_is_prompted_as_it_was_trained(plain):
    assert prompt_text("seq2seq-lm", "summarization", ARTICLE["input"], plain) == (
        seq2seq_example("summarization", ARTICLE)["source"])


@pytest.mark.parametrize("template", [False, True], ids=["markers", "chat-template"])
def test_a_preference_trained_model_is_prompted_as_it_was_trained(template, plain, chat):
    tokenizer = chat if template else plain
    rows = [{"prompt": "Name a colour. ", "chosen": "Blue.", "rejected": "Seven."}]
    assert prompt_text("causal-lm", "text-generation", rows[0]["prompt"], tokenizer) == (
        preference_rows("text-generation", rows, tokenizer)[0]["prompt"])
