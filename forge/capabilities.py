"""Which (task, strategy, provider) combinations this service trains today."""

from __future__ import annotations

from forge.errors import BadRequest
from forge.schemas import TrainingRequest

SUPPORTED: frozenset[tuple[str, str, str]] = frozenset(
    {("text-generation", strategy, "huggingface") for strategy in ("sft", "qlora", "dpo", "rlhf")}
    | {(task, strategy, "huggingface") for task in ("summarization", "extractive-question-answering")
       for strategy in ("sft", "qlora")}
)


def supported_combinations() -> list[dict[str, str]]:
    return [{"task": t, "strategy": s, "provider": p} for t, s, p in sorted(SUPPORTED)]


def check_supported(request: TrainingRequest) -> None:
    combination = (request.task, request.strategy, request.provider)
    if combination not in SUPPORTED:
        raise BadRequest(
            f"task {request.task!r} with strategy {request.strategy!r} and provider {request.provider!r} "
            f"is not yet supported; supported: "
            + "; ".join("/".join(c) for c in sorted(SUPPORTED))
        )
