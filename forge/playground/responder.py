"""Load a trained model (base + PEFT adapter, or a merged model) and answer a playground request with it.

Used by the Playground deployment; everything here runs in a playground replica,
never in the API process. It prompts through `forge.modeling.prompts`, as training did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from forge.modeling.batch_generation import Continuation, Continued, Row, generate_together
from forge.modeling.loading import ModelKind, load_model, load_tokenizer
from forge.modeling.merging import is_merged_folder
from forge.modeling.model_card import ModelCard
from forge.modeling.placement import CPU, Placement
from forge.modeling.prompts import causal_prompt, prompt_for
from forge.modeling.qa_spans import WINDOW_TOKENS, answer_questions
from forge.schemas import GenerateRequest


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    task: str
    kind: ModelKind
    # In a playground replica: the base's batch queue (forge.playground.adapter_cache), which continues
    # the text together with other requests' and holds the base's lock while it does. None: alone, here.
    batch: Optional[Callable[[Continuation], Continued]] = None

    def continue_text(self, continuation: Continuation) -> Continued:
        """The model's continuation of a prompt (a generative model), its text also streamed to `emit`."""
        if self.batch is not None:
            return self.batch(continuation)
        row = Row(continuation, self.tokenizer)
        return generate_together(self.model, [row], seq2seq=self.kind == "seq2seq-lm")[0]


def read_model_meta(model_dir: Path) -> ModelCard:
    """The folder's model card; FileNotFoundError unless the folder holds its weights in safetensors.

    An adapter model holds a PEFT adapter; a merged one (card.merged) full weights.
    """
    card = ModelCard.read(model_dir)
    # PEFT and transformers would fall back to pickled .bin weights; we only ever write safetensors.
    if card.merged is not None and not is_merged_folder(model_dir):
        raise FileNotFoundError(f"{model_dir} has no model.safetensors")
    if card.merged is None and not (model_dir / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(f"{model_dir} has no adapter_model.safetensors")
    return card


def load_merged_model(model_dir: Path, card: ModelCard, builtin_dir: Path, *, trust_remote_code: bool = False,
                      placement: Placement = CPU) -> Any:
    """A merged model's weights, from its own folder: a full model of the card's kind, no base, no PEFT."""
    return load_model(card.model_kind, str(model_dir), builtin_dir, trust_remote_code=trust_remote_code,
                      placement=placement).eval()


def load_trained_model(model_dir: Path, builtin_dir: Path, *, trust_remote_code: bool = False) -> LoadedModel:
    """One trained model on a base of its own (the playground shares bases: adapter_cache); a merged one whole."""
    from peft import PeftModel

    card = read_model_meta(model_dir)
    if card.merged is not None:
        model = load_merged_model(model_dir, card, builtin_dir, trust_remote_code=trust_remote_code)
        tokenizer = load_tokenizer(str(model_dir), builtin_dir, trust_remote_code=trust_remote_code)
        return LoadedModel(model, tokenizer, card.task, card.model_kind)
    quantization = card.quantization()  # a qlora model's base, quantized as it was trained
    base = load_model(card.model_kind, card.base_model_source, builtin_dir, trust_remote_code=trust_remote_code,
                      quantization=quantization)
    model = PeftModel.from_pretrained(base, str(model_dir)).eval()
    tokenizer = load_tokenizer(str(model_dir), builtin_dir, trust_remote_code=trust_remote_code)
    return LoadedModel(model, tokenizer, card.task, card.model_kind)


def load_base_model(
    model_source: str, builtin_dir: Path, task: str, kind: ModelKind = "causal-lm", *, trust_remote_code: bool = False
) -> LoadedModel:
    """The untrained base, prompted like a trained model of `task` (to compare against)."""
    model = load_model(kind, model_source, builtin_dir, trust_remote_code=trust_remote_code).eval()
    tokenizer = load_tokenizer(model_source, builtin_dir, trust_remote_code=trust_remote_code)
    return LoadedModel(model, tokenizer, task, kind)


def prompt_text(kind: ModelKind, task: str, text: str, tokenizer: Any) -> str:
    """The prompt a generative model of `kind`, trained for `task`, is sent for the user's `text`."""
    if kind == "seq2seq-lm":
        return prompt_for(task, text, seq2seq=True)
    return causal_prompt(task, text, tokenizer)


def respond(loaded: LoadedModel, request: GenerateRequest) -> dict[str, Any]:
    """generated_text (only the new text), tokens_generated, generation_time_ms, and per task extras."""
    started = time.perf_counter()
    if loaded.kind == "question-answering":
        row = {"question": request.question or request.prompt, "context": request.context}
        span = answer_questions(loaded.model, loaded.tokenizer, [row], max_length=WINDOW_TOKENS)[0]
        tokens = len(loaded.tokenizer(span.text, add_special_tokens=False)["input_ids"]) if span.text else 0
        result: dict[str, Any] = {"generated_text": span.text, "tokens_generated": tokens, "score": span.score}
    else:
        if request.prompt is None:  # the ingress refuses it first (it knows the model's task)
            raise ValueError(f"a {loaded.task} model needs a prompt")
        prompt = prompt_text(loaded.kind, loaded.task, request.prompt, loaded.tokenizer)
        output = loaded.continue_text(Continuation(prompt, request.max_new_tokens, temperature=request.temperature,
                                                   top_p=request.top_p))
        result = {"generated_text": output.text, "tokens_generated": output.text_tokens,
                  "prompt_truncated": output.prompt_truncated}
    result["generation_time_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result
