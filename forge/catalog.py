"""The one table of what trains: task x strategy x provider -> recipe, dataset formats.

Request validation, `check_supported` (admission), `GET /api/info`'s `supported`,
the dataset-format check and the worker's recipe choice all read `CATALOG`.
Adding a strategy is one `Row` here plus one recipe file in
`forge/training/recipes/` registered under the key the row names.

Pure Python: the API process and `forge.schemas` import it, so it imports neither
the training stack nor `forge.schemas` (which imports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional, Protocol

from forge.errors import BadRequest

if TYPE_CHECKING:
    from forge.unsloth_env import ProviderStatus


@dataclass(frozen=True)
class Row:
    """One combination that trains, and how."""

    task: str
    strategy: str
    provider: str
    # Key in forge.training.recipes.RECIPES.
    recipe: str
    # Dataset formats (forge.datasets.FORMATS) whose rows train it.
    formats: tuple[str, ...]
    # The recipe instead when the base model is an encoder-decoder (a T5 summarizes
    # through seq2seq; a decoder-only model through causal SFT with a prompt).
    encoder_decoder_recipe: Optional[str] = None
    # The base is loaded 4- or 8-bit (qlora is sft on a quantized base).
    quantized_base: bool = False


@dataclass(frozen=True)
class Catalog:
    """The rows; immutable, so a changed table (a test's) is a new Catalog put in CATALOG's place."""

    rows: tuple[Row, ...]

    def __post_init__(self) -> None:
        keys = [(r.task, r.strategy, r.provider) for r in self.rows]
        if len(keys) != len(set(keys)):
            raise ValueError("the catalog lists a task x strategy x provider twice")

    def row(self, task: str, strategy: str, provider: str) -> Optional[Row]:
        return next((r for r in self.rows if (r.task, r.strategy, r.provider) == (task, strategy, provider)), None)

    def with_row(self, row: Row) -> "Catalog":
        return Catalog(self.rows + (row,))

    def without(self, task: str, strategy: str, provider: str) -> "Catalog":
        return Catalog(tuple(r for r in self.rows if (r.task, r.strategy, r.provider) != (task, strategy, provider)))


# Plain `text` rows train language modelling on the whole text (TRL's "text" field).
_TEXT = ("pairs", "chat", "text")
_PREFERENCE = ("preference",)

CATALOG = Catalog((
    # task, strategy, provider, recipe, formats [, recipe for an encoder-decoder base] [, quantized base]
    Row("text-generation", "sft", "huggingface", "causal-sft", _TEXT),
    Row("text-generation", "qlora", "huggingface", "causal-sft", _TEXT, quantized_base=True),
    Row("text-generation", "dpo", "huggingface", "dpo", _PREFERENCE),
    Row("text-generation", "rlhf", "huggingface", "rlhf", _PREFERENCE),
    Row("summarization", "sft", "huggingface", "causal-sft", ("pairs",), encoder_decoder_recipe="seq2seq"),
    Row("summarization", "qlora", "huggingface", "causal-sft", ("pairs",), encoder_decoder_recipe="seq2seq",
        quantized_base=True),
    Row("extractive-question-answering", "sft", "huggingface", "extractive-qa", ("qa",)),
    Row("extractive-question-answering", "qlora", "huggingface", "extractive-qa", ("qa",), quantized_base=True),
    # Unsloth's FastLanguageModel loads causal LMs; its two-stage RLHF is not wired up.
    Row("text-generation", "sft", "unsloth", "causal-sft", _TEXT),
    Row("text-generation", "qlora", "unsloth", "causal-sft", _TEXT, quantized_base=True),
    Row("text-generation", "dpo", "unsloth", "dpo", _PREFERENCE),
))

# What a provider's refusal says it trains, and what a strategy's says it is.
_PROVIDER_MODELS = {"unsloth": "causal language models"}
_STRATEGY_NOTES = {"rlhf": "reward model + GRPO"}


class Combination(Protocol):
    """What `check_supported` reads of a request (a `TrainingRequest`)."""

    task: str
    strategy: str
    provider: str


def find(task: str, strategy: str, provider: str) -> Optional[Row]:
    """The row that trains this combination; None when none does."""
    return CATALOG.row(task, strategy, provider)


def formats_for(task: str, strategy: str) -> tuple[str, ...]:
    """Formats that can train `task` with `strategy` (any provider); () when nothing trains that combination."""
    return _unique(f for r in CATALOG.rows if (r.task, r.strategy) == (task, strategy) for f in r.formats)


def quantizes_base(strategy: str) -> bool:
    """Whether `strategy` trains on a 4- or 8-bit base."""
    return any(r.quantized_base for r in CATALOG.rows if r.strategy == strategy)


def strategy_misfit(task: str, strategy: str) -> Optional[str]:
    """Why no provider trains `task` with `strategy` (naming what to change); None when one does."""
    if formats_for(task, strategy):
        return None
    tasks = _unique(r.task for r in CATALOG.rows if r.strategy == strategy)
    strategies = _unique(r.strategy for r in CATALOG.rows if r.task == task)
    trains = f"trains {' / '.join(tasks)} models only" if tasks else "trains no task"
    fixes = ([f"task to {' or '.join(map(repr, tasks))}"] if tasks else []) + (
        [f"strategy to {'/'.join(map(repr, strategies))}"] if strategies else [])
    return f"strategy {strategy!r} {trains}; set {' or '.join(fixes) or 'another task and strategy'}"


def supported(unsloth: ProviderStatus) -> tuple[Row, ...]:
    """The rows whose provider can train now."""
    return tuple(r for r in CATALOG.rows if r.provider != "unsloth" or unsloth.available)


def supported_combinations(unsloth: ProviderStatus) -> list[dict[str, str]]:
    """`GET /api/info`'s `supported`: every trainable combination, sorted."""
    return [{"task": t, "strategy": s, "provider": p}
            for t, s, p in sorted({(r.task, r.strategy, r.provider) for r in supported(unsloth)})]


def check_supported(request: Combination, unsloth: ProviderStatus) -> None:
    """BadRequest naming what to change when the request's combination cannot train now."""
    task, strategy, provider = request.task, request.strategy, request.provider
    if provider == "unsloth" and not unsloth.available:
        raise BadRequest(f"provider 'unsloth' is not available: {unsloth.detail}")
    if find(task, strategy, provider) is not None:
        return
    elsewhere = _unique(r.provider for r in CATALOG.rows if (r.task, r.strategy) == (task, strategy))
    provider_tasks = _unique(r.task for r in CATALOG.rows if r.provider == provider)
    if elsewhere and task not in provider_tasks:
        raise BadRequest(
            f"provider {provider!r} trains {_PROVIDER_MODELS.get(provider, 'models')} "
            f"(task {' or '.join(map(repr, provider_tasks))}); task {task!r} needs provider "
            f"{' or '.join(map(repr, elsewhere))}"
        )
    if elsewhere:
        note = f" ({_STRATEGY_NOTES[strategy]})" if strategy in _STRATEGY_NOTES else ""
        raise BadRequest(
            f"strategy {strategy!r}{note} is not available with provider {provider!r}; "
            f"use provider {' or '.join(map(repr, elsewhere))}"
        )
    raise BadRequest(
        f"task {task!r} with strategy {strategy!r} and provider {provider!r} "
        "is not supported; GET /api/info lists what is"
    )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    """`items` without repeats, in first-seen order."""
    return tuple(dict.fromkeys(items))
