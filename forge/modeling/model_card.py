"""The model card: forge.json, written next to every trained adapter, read to load and serve it.

The training worker writes it when it saves a model; the playground reads it to pick
the base model and the prompt format. Users read the file too, so its layout (keys,
their order, `json.dumps(indent=2)`) stays what it has always been.
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

    def write(self, folder: Path) -> Path:
        """Write `folder/forge.json`; returns its path."""
        path = folder / CARD_FILE
        # json.dumps, not model_dump_json: it writes inf perplexity as Infinity, as cards always had.
        path.write_text(json.dumps(self.model_dump(mode="python"), indent=2))
        return path

    def quantization(self) -> Optional[BaseQuantization]:
        """How the base was quantized for training (strategy qlora); None for a full-precision base."""
        options, request = self.options, self.request
        if not (options.get("quantize_4bit") or options.get("quantize_8bit")):
            return None
        return BaseQuantization(
            bits=8 if options.get("quantize_8bit") else 4,
            quant_type=request.get("bnb_4bit_quant_type", "nf4"),
            compute_dtype=options.get("bnb_4bit_compute_dtype", "float32"),
            double_quant=bool(request.get("use_nested_quant", False)),
            full_precision=FULL_PRECISION_HEADS.get(self.model_kind, ()),
        )

    @classmethod
    def read(cls, folder: Path) -> "ModelCard":
        """The card in `folder`; FileNotFoundError without one, pydantic's ValidationError if malformed."""
        return cls.model_validate(json.loads((folder / CARD_FILE).read_text()))
