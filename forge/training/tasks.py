"""How each task turns a dataset row into a training example and a prompt.

Shared by the training worker and the playground, so a model is prompted at
inference exactly as it was trained. Pure Python: no heavy imports.
"""

from __future__ import annotations

from typing import Any

# Decoder-only models without a chat template learn to answer after this marker.
_TEXT_GENERATION_PROMPT = "### Instruction:\n{input}\n\n### Response:\n"


def prompt_for(task: str, text: str) -> str:
    """The prompt a model of `task` sees for the user's input `text`."""
    if task == "text-generation":
        return _TEXT_GENERATION_PROMPT.format(input=text.strip())
    raise ValueError(f"task {task!r} is not supported yet")


def to_prompt_completion(task: str, row: dict[str, Any]) -> dict[str, str]:
    """A validated dataset row as TRL's prompt/completion pair (loss on the completion only)."""
    if task == "text-generation":
        return {"prompt": prompt_for(task, row["input"]), "completion": row["output"].strip()}
    raise ValueError(f"task {task!r} is not supported yet")
