"""The model card: forge.json, written next to every trained model, read to load and serve it.

The training worker writes it when it saves a model (the merge task when it merges
one); the playground reads it to pick the base model and the prompt format. Users
read the file too, so its layout (keys, their order, `json.dumps(indent=2)`) stays
what it has always been: a new key is appended, and written only when it is set.

`readme_text` renders the same card as a Hugging Face style README.md, for a
downloaded model: generated when it is asked for, never stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from forge.modeling.loading import ModelKind
from forge.modeling.quantization import FULL_PRECISION_HEADS, BaseQuantization
from forge.schemas import Strategy, Task

CARD_FILE = "forge.json"
README_FILE = "README.md"


class MergeOrigin(BaseModel):
    """Where a merged model came from: the adapter model folded into its base."""

    adapter_model_id: int = Field(description="The registry id of the adapter model that was merged.")
    adapter_model_name: str = Field(description="Its name when it was merged.")
    dtype: str = Field(description="The dtype the merged weights are saved in (the base checkpoint's own).")
    quantization_dropped: Optional[str] = Field(
        None, description="How the base was quantized for training (e.g. '4-bit nf4'), when it was; the merge "
                          "loads the base unquantized instead.")


class ModelCard(BaseModel):
    """What a trained model is, how it was trained and how to load it."""

    # Unknown keys are tolerated (and dropped): a card outlives the code that wrote it, and
    # one written by a newer version must still load in an older playground replica, which
    # needs only task, model_kind and base_model_source. Nothing rewrites a card it read.
    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(description="The training job that produced the model.")
    task: Task = Field(description="What the model was trained to do; picks its prompt format.")
    # Cards from before strategies existed were all LoRA SFT.
    strategy: Strategy = Field("sft", description="Fine-tuning method.")
    # Cards from before model_kind existed were all decoder-only models.
    model_kind: ModelKind = Field("causal-lm", description="Which transformers model class the base loads as.")
    base_model: str = Field(description="The base model as the user named it.")
    base_model_source: str = Field(description="Where the base was loaded from: built-in name, local dir or Hub id.")
    # Kept as plain dicts: a card must load even after the request schema has moved on.
    request: dict[str, Any] = Field(description="The training request, as submitted (JSON form).")
    options: dict[str, Any] = Field(description="The resolved training options the job ran with.")
    # int | float in that order so that integer figures (train_steps) stay integers on disk.
    metrics: dict[str, Optional[Union[int, float]]] = Field(description="Figures of the finished training.")
    versions: dict[str, Optional[str]] = Field(description="Library versions the training process ran.")
    # Cards from before the unsloth provider existed were trained without it.
    unsloth_imported: bool = Field(False, description="Whether the training process had unsloth loaded.")
    # Set on a merged model's card only: its folder holds full weights, no adapter.
    merged: Optional[MergeOrigin] = Field(None, description="Set when the adapter was merged into its base.")

    def write(self, folder: Path) -> Path:
        """Write `folder/forge.json`; returns its path."""
        path = folder / CARD_FILE
        path.write_text(self.to_json())
        return path

    def to_json(self) -> str:
        """forge.json's text."""
        data = self.model_dump(mode="python")
        if data["merged"] is None:  # an adapter's card keeps the layout it always had
            del data["merged"]
        # json.dumps, not model_dump_json: it writes inf perplexity as Infinity, as cards always had.
        return json.dumps(data, indent=2)

    def quantization(self) -> Optional[BaseQuantization]:
        """How the base was quantized for training (strategy qlora); None for a full-precision base."""
        options, request = self.options, self.request
        if self.merged is not None:  # the merge loaded the base unquantized; the weights are full precision
            return None
        if not (options.get("quantize_4bit") or options.get("quantize_8bit")):
            return None
        return BaseQuantization(
            bits=8 if options.get("quantize_8bit") else 4,
            quant_type=request.get("bnb_4bit_quant_type", "nf4"),
            compute_dtype=options.get("bnb_4bit_compute_dtype", "float32"),
            double_quant=bool(request.get("use_nested_quant", False)),
            full_precision=FULL_PRECISION_HEADS.get(self.model_kind, ()),
        )

    def trained_quantization(self) -> Optional[str]:
        """How the base was quantized while the adapter trained, in words ('4-bit nf4'); None if it was not."""
        if self.merged is not None:
            return self.merged.quantization_dropped
        quantization = self.quantization()
        if quantization is None:
            return None
        return f"{quantization.bits}-bit" + (f" {quantization.quant_type}" if quantization.bits == 4 else "")

    @classmethod
    def read(cls, folder: Path) -> "ModelCard":
        """The card in `folder`; FileNotFoundError without one, pydantic's ValidationError if malformed."""
        return cls.parse((folder / CARD_FILE).read_text())

    @classmethod
    def parse(cls, text: str) -> "ModelCard":
        """A card from forge.json's text (json.loads: it reads the Infinity json.dumps writes)."""
        return cls.model_validate(json.loads(text))


# The request's fields that say what was trained, not how: listed above the hyperparameters.
_IDENTITY_FIELDS = ("task", "model_name", "provider", "strategy", "dataset", "compute_specs")
_PIPELINE_TAGS = {"text-generation": "text-generation", "summarization": "summarization",
                  "extractive-question-answering": "question-answering"}
_AUTO_CLASSES = {"causal-lm": "AutoModelForCausalLM", "seq2seq-lm": "AutoModelForSeq2SeqLM",
                 "question-answering": "AutoModelForQuestionAnswering",
                 "sequence-classification": "AutoModelForSequenceClassification"}


def _yaml(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar: names with ':' or '#' stay strings.
    return json.dumps(value)


def _cell(value: Any) -> str:
    return "—" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _front_matter(card: ModelCard) -> list[str]:
    merged = card.merged is not None
    tags = ["modelforge", card.strategy, card.task]
    if not merged:  # Hugging Face's convention for an adapter's link to its base
        tags += ["lora", f"base_model:adapter:{card.base_model}"]
    return ["---", f"base_model: {_yaml(card.base_model)}",
            f"library_name: {'transformers' if merged else 'peft'}",
            f"pipeline_tag: {_PIPELINE_TAGS[card.task]}", "tags:", *[f"- {_yaml(tag)}" for tag in tags], "---"]


def _how_to_load(card: ModelCard) -> list[str]:
    auto = _AUTO_CLASSES[card.model_kind]
    if card.merged is not None:
        code = [f"from transformers import {auto}, AutoTokenizer", "",
                f'model = {auto}.from_pretrained("path/to/this/folder")',
                'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")']
    else:
        code = ["from peft import PeftModel", f"from transformers import {auto}, AutoTokenizer", "",
                f"base = {auto}.from_pretrained({json.dumps(card.base_model)})",
                'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
                'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")']
    return ["## How to load", "", "```python", *code, "```"]


def readme_text(card: ModelCard, *, name: str, description: Optional[str] = None) -> str:
    """A Hugging Face style README.md for the model: front matter, what it is, how it was trained, its figures."""
    request = card.request
    if card.merged is not None:
        what = (f"`{card.base_model}` with the LoRA adapter of model {card.merged.adapter_model_id} "
                f"(`{card.merged.adapter_model_name}`) merged into its weights, saved in {card.merged.dtype}: "
                "a standalone model, no PEFT needed.")
        if card.merged.quantization_dropped:
            what += (f" The adapter trained on a {card.merged.quantization_dropped} quantized base; it was merged "
                     "onto the base in its original precision.")
    else:
        what = f"A LoRA adapter (PEFT) for `{card.base_model}`."
    lines = [*_front_matter(card), "", f"# {name}", ""]
    if description:
        lines += [description, ""]
    lines += [what, "", "Fine-tuned with ModelForge.", "", "## Training", "",
              f"- **Base model:** `{card.base_model}`",
              f"- **Dataset:** `{request.get('dataset', 'unknown')}`",
              f"- **Task:** {card.task}",
              f"- **Strategy:** {card.strategy}",
              f"- **Provider:** {request.get('provider', 'huggingface')}",
              f"- **Job:** `{card.job_id}`"]
    quantized = card.trained_quantization()
    if quantized:
        lines.append(f"- **Base quantized for training:** {quantized}")
    lines += ["", "### Hyperparameters", "", "| name | value |", "|---|---|"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in request.items() if key not in _IDENTITY_FIELDS]
    lines += ["", "## Metrics", ""]
    if card.metrics:
        lines += ["| metric | value |", "|---|---|", *[f"| {_cell(k)} | {_cell(v)} |" for k, v in card.metrics.items()]]
    else:
        lines.append("No metrics were recorded.")
    versions = ", ".join(f"{lib} {v}" for lib, v in card.versions.items() if v)
    lines += ["", *_how_to_load(card), "", "## Framework versions", "", versions or "unknown", ""]
    return "\n".join(lines)
