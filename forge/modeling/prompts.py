"""How each task turns canonical dataset rows into model inputs, and user text into a prompt.

The one place that formats a prompt: the training recipes and the playground both
call it, so a model is prompted at inference exactly as it was trained. Pure
Python: no heavy imports.
"""

from __future__ import annotations

from typing import Any

# Decoder-only models without a chat template learn to answer after these markers.
_INSTRUCTION = "### Instruction:\n{text}\n\n### Response:\n"
_SUMMARIZE = "### Summarize:\n{text}\n\n### Summary:\n"
_SYSTEM = "### System:\n{text}\n\n"
_ROLE_HEADERS = {"user": "### Instruction:\n", "assistant": "### Response:\n"}
# Seq2seq models (T5 style) take a task prefix instead.
_SEQ2SEQ_PREFIX = {"summarization": "summarize: "}


def prompt_for(task: str, text: str, *, seq2seq: bool = False) -> str:
    """The prompt a model trained for `task` sees for the user's input `text`."""
    text = text.strip()
    if seq2seq:
        return _SEQ2SEQ_PREFIX.get(task, "") + text
    if task == "summarization":
        return _SUMMARIZE.format(text=text)
    return _INSTRUCTION.format(text=text)


def causal_prompt(task: str, text: str, tokenizer: Any) -> str:
    """A decoder-only model's prompt: the tokenizer's chat template for text generation when it has one."""
    if task == "text-generation" and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text.strip()}], tokenize=False, add_generation_prompt=True
        )
    return prompt_for(task, text)


def chat_prompt(task: str, messages: list[dict[str, str]], tokenizer: Any) -> str:
    """A conversation as a decoder-only text-generation model's prompt, ready for the assistant's reply.

    The tokenizer's chat template when it has one, else our markers (as SFT trained on chat rows).
    A single user message gives exactly `causal_prompt`'s prompt for its text.
    """
    stripped = [{"role": m["role"], "content": m["content"].strip()} for m in messages]
    if task == "text-generation" and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(stripped, tokenize=False, add_generation_prompt=True)
    if task != "text-generation":
        raise ValueError(f"a {task} model takes one text, not a conversation")
    return render_chat(stripped)


def render_chat(messages: list[dict[str, str]]) -> str:
    """Messages as one prompt, for tokenizers without a chat template; ends ready for the reply."""
    parts = []
    for message in messages:
        if message["role"] == "system":
            parts.append(_SYSTEM.format(text=message["content"].strip()))
        else:
            parts.append(_ROLE_HEADERS[message["role"]] + message["content"].strip() + "\n\n")
    return "".join(parts) + _ROLE_HEADERS["assistant"]


def causal_example(task: str, row: dict[str, Any], *, chat_template: bool) -> dict[str, Any]:
    """A canonical row as TRL's prompt/completion pair (loss on the completion only), or its plain text.

    Text generation uses the tokenizer's chat template when it has one (TRL's
    conversational format); otherwise our own markers. A `text` row is plain
    language modelling: TRL's "text" field, loss on all of it, no prompt format.
    """
    if "text" in row:
        return {"text": row["text"]}
    messages = row.get("messages") or [
        {"role": "user", "content": row["input"]}, {"role": "assistant", "content": row["output"]}]
    # Stripped as the playground strips the user's text: a chat template renders whitespace as it is.
    *context, answer = [{**m, "content": m["content"].strip()} for m in messages]
    if task == "text-generation" and chat_template:
        return {"prompt": context, "completion": [answer]}
    if "messages" in row:
        return {"prompt": render_chat(context), "completion": answer["content"]}
    return {"prompt": prompt_for(task, row["input"]), "completion": row["output"].strip()}


def seq2seq_example(task: str, row: dict[str, Any]) -> dict[str, str]:
    return {"source": prompt_for(task, row["input"], seq2seq=True), "target": row["output"].strip()}


def preference_rows(task: str, rows: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, str]]:
    """Preference pairs (dpo, rlhf) with the prompt formatted as the playground will format it."""
    return [{"prompt": causal_prompt(task, r["prompt"], tokenizer), "chosen": r["chosen"], "rejected": r["rejected"]}
            for r in rows]


def pair_texts(pairs: Any) -> list[str]:
    """Each preference pair's two full texts (prompt + chosen, prompt + rejected), as a trainer reads them."""
    return [row["prompt"] + row[side] for row in pairs for side in ("chosen", "rejected")]
