"""Which (task, strategy, provider) combinations this service trains."""

from __future__ import annotations

from forge.errors import BadRequest
from forge.schemas import TrainingRequest
from forge.unsloth_env import ProviderStatus

HUGGINGFACE: frozenset[tuple[str, str, str]] = frozenset(
    {("text-generation", strategy, "huggingface") for strategy in ("sft", "qlora", "dpo", "rlhf")}
    | {(task, strategy, "huggingface") for task in ("summarization", "extractive-question-answering")
       for strategy in ("sft", "qlora")}
)
# Unsloth's FastLanguageModel loads causal LMs; its two-stage RLHF is not wired up.
UNSLOTH: frozenset[tuple[str, str, str]] = frozenset(
    {("text-generation", strategy, "unsloth") for strategy in ("sft", "qlora", "dpo")}
)


def supported(unsloth: ProviderStatus) -> frozenset[tuple[str, str, str]]:
    return HUGGINGFACE | UNSLOTH if unsloth.available else HUGGINGFACE


def supported_combinations(unsloth: ProviderStatus) -> list[dict[str, str]]:
    return [{"task": t, "strategy": s, "provider": p} for t, s, p in sorted(supported(unsloth))]


def check_supported(request: TrainingRequest, unsloth: ProviderStatus) -> None:
    if request.provider == "unsloth":
        if not unsloth.available:
            raise BadRequest(f"provider 'unsloth' is not available: {unsloth.detail}")
        if request.task != "text-generation":
            raise BadRequest(
                f"provider 'unsloth' trains causal language models (task 'text-generation'); "
                f"task {request.task!r} needs provider 'huggingface'"
            )
        if request.strategy == "rlhf":
            raise BadRequest(
                "strategy 'rlhf' (reward model + GRPO) is not available with provider 'unsloth'; "
                "use provider 'huggingface'"
            )
    combination = (request.task, request.strategy, request.provider)
    if combination not in supported(unsloth):
        raise BadRequest(
            f"task {request.task!r} with strategy {request.strategy!r} and provider {request.provider!r} "
            "is not supported; GET /api/info lists what is"
        )
