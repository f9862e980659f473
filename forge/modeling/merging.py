"""Merge a trained LoRA adapter into its base: a standalone model, saved in safetensors with its tokenizer.

POST /api/models/{id}/merge runs `merge_adapter` as a Ray task (the TrainingManager
awaits it and registers the result): loading and merging a base takes torch, memory
and seconds to minutes, none of which the API process or the manager's event loop
may spend. torch, transformers and PEFT are imported when it runs, not here.

A qlora adapter trained on a 4- or 8-bit base. Merging into quantized weights would
round the update away (and bitsandbytes cannot save a merged 4-bit layer as plain
weights), so the base is loaded unquantized, in the checkpoint's own dtype, and the
adapter is merged onto that: the outcome says so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, Field

from forge.modeling.model_card import MergeOrigin, ModelCard
from forge.storage import folder_written_to, local_file


class MergeSpec(BaseModel):
    """What one merge reads and writes (locations are local paths or storage URIs)."""

    adapter_location: str = Field(description="The adapter model's folder.")
    output_location: str = Field(description="Where the merged model's folder is written (replaced if present).")
    adapter_model_id: int
    adapter_model_name: str
    builtin_dir: str = Field(description="Where built-in bases are (built on first use), on the task's node.")
    trust_remote_code: bool = False


class MergeOutcome(BaseModel):
    dtype: str = Field(description="The dtype the merged weights were saved in.")
    quantization_dropped: Optional[str] = Field(
        None, description="How the adapter's training base was quantized, when it was; the merge used it unquantized.")


def merge_adapter(spec: MergeSpec) -> MergeOutcome:
    """Load the adapter's base unquantized in its checkpoint dtype, merge the adapter in, save it whole."""
    with tempfile.TemporaryDirectory(prefix="forge-merge-") as scratch:
        adapter_dir = local_file(spec.adapter_location, Path(scratch))
        card = ModelCard.read(adapter_dir)
        if card.merged is not None:
            raise ValueError(f"model {spec.adapter_model_id} is already a merged model")
        model, tokenizer = _merged_model(card, adapter_dir, spec)
        dtype = str(model.dtype).removeprefix("torch.")
        outcome = MergeOutcome(dtype=dtype, quantization_dropped=card.trained_quantization())
        origin = MergeOrigin(adapter_model_id=spec.adapter_model_id, adapter_model_name=spec.adapter_model_name,
                             **outcome.model_dump())
        with folder_written_to(spec.output_location, Path(scratch)) as partial:
            model.save_pretrained(partial, safe_serialization=True)
            tokenizer.save_pretrained(partial)
            card.model_copy(update={"merged": origin}).write(partial)
    return outcome


def _merged_model(card: ModelCard, adapter_dir: Path, spec: MergeSpec):
    from peft import PeftModel

    from forge.modeling.loading import load_model, load_tokenizer
    from forge.modeling.placement import CPU

    builtin_dir = Path(spec.builtin_dir)
    # quantization=None and the checkpoint's own dtype ("auto"): never the 4-bit base a qlora job trained on.
    base = load_model(card.model_kind, card.base_model_source, builtin_dir, trust_remote_code=spec.trust_remote_code,
                      quantization=None, placement=CPU.model_copy(update={"load_dtype": "auto"}))
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer = load_tokenizer(str(adapter_dir), builtin_dir, trust_remote_code=spec.trust_remote_code)
    return merged.eval(), tokenizer


def is_merged_folder(folder: Path) -> bool:
    """Whether `folder` holds full weights in safetensors (one file or an index of shards), as a merge writes."""
    return (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()

