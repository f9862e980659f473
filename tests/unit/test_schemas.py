"""Validation rules and defaults of TrainingRequest, GenerateRequest and utc_iso."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from forge.schemas import MAX_NEW_TOKENS_CAP, GenerateRequest, TrainingRequest, utc_iso

BASE = {"task": "text-generation", "model_name": "forge/tiny-llama", "dataset": "data.jsonl"}


def _error_fields(error: ValidationError) -> set[str]:
    return {str(e["loc"][0]) for e in error.errors() if e["loc"]}


# --------------------------------------------------------------------- training


def test_defaults():
    request = TrainingRequest(**BASE)
    assert request.task == "text-generation"
    assert request.model_name == "forge/tiny-llama"
    assert request.dataset == "data.jsonl"
    assert request.provider == "huggingface"
    assert request.strategy == "sft"
    assert request.compute_specs is None
    assert request.lora_r == 16
    assert request.lora_alpha == 32
    assert request.lora_dropout == 0.1
    assert request.use_4bit is True
    assert request.use_8bit is False
    assert request.bnb_4bit_compute_dtype == "float16"
    assert request.bnb_4bit_quant_type == "nf4"
    assert request.fp16 is False and request.bf16 is False
    assert request.num_train_epochs == 1
    assert request.per_device_train_batch_size == 1
    assert request.per_device_eval_batch_size == 1
    assert request.gradient_accumulation_steps == 4
    assert request.max_grad_norm == 0.3
    assert request.learning_rate == 2e-4
    assert request.weight_decay == 0.001
    assert request.optim == "paged_adamw_32bit"
    assert request.lr_scheduler_type == "cosine"
    assert request.max_steps == -1
    assert request.warmup_ratio == 0.03
    assert request.max_seq_length is None
    assert request.eval_split == 0.2
    assert request.eval_steps == 100
    assert request.num_workers == 1


@pytest.mark.parametrize("field", ["task", "model_name", "dataset"])
def test_required_field_missing(field):
    body = {k: v for k, v in BASE.items() if k != field}
    with pytest.raises(ValidationError) as caught:
        TrainingRequest(**body)
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert errors[0]["type"] == "missing"


BAD_TRAINING_VALUES = [
    ("task", "translation"),
    ("task", ""),
    ("task", None),
    ("model_name", ""),
    ("model_name", "   "),
    ("model_name", None),
    ("provider", "openai"),
    ("strategy", "full"),
    ("dataset", ""),
    ("dataset", " \t"),
    ("compute_specs", "super_computer"),
    ("lora_r", 0),
    ("lora_r", 257),
    ("lora_r", "abc"),
    ("lora_r", 1.5),
    ("lora_alpha", 0),
    ("lora_alpha", "abc"),
    ("lora_dropout", -0.1),
    ("lora_dropout", 1.5),
    ("lora_dropout", "abc"),
    ("bnb_4bit_compute_dtype", "int8"),
    ("bnb_4bit_quant_type", "int4"),
    ("num_train_epochs", 0),
    ("num_train_epochs", 1.5),
    ("num_train_epochs", "abc"),
    ("per_device_train_batch_size", 0),
    ("per_device_eval_batch_size", 0),
    ("gradient_accumulation_steps", 0),
    ("max_grad_norm", -0.1),
    ("learning_rate", 0),
    ("learning_rate", -1e-4),
    ("learning_rate", 1.5),
    ("learning_rate", "abc"),
    ("weight_decay", -0.001),
    ("optim", "adam"),
    ("lr_scheduler_type", "step"),
    ("max_steps", 0),
    ("max_steps", -2),
    ("max_steps", "abc"),
    ("warmup_ratio", -0.01),
    ("warmup_ratio", 1.01),
    ("max_seq_length", 15),
    ("max_seq_length", 0),
    ("eval_split", -0.1),
    ("eval_split", 1.0),
    ("eval_steps", 0),
    ("num_workers", 0),
    ("num_workers", 65),
    ("num_workers", "abc"),
    ("num_epochs", 3),  # unknown field: a typo of num_train_epochs
    ("learningrate", 0.1),
]


@pytest.mark.parametrize(("field", "bad_value"), BAD_TRAINING_VALUES)
def test_invalid_value_rejected(field, bad_value):
    with pytest.raises(ValidationError) as caught:
        TrainingRequest(**{**BASE, field: bad_value})
    assert _error_fields(caught.value) == {field}


def test_unknown_field_error_type():
    with pytest.raises(ValidationError) as caught:
        TrainingRequest(**BASE, num_epochs=3)
    (error,) = caught.value.errors()
    assert error["loc"] == ("num_epochs",)
    assert error["type"] == "extra_forbidden"


VALID_BOUNDARIES = [
    ("task", "summarization"),
    ("task", "extractive-question-answering"),
    ("provider", "unsloth"),
    ("strategy", "qlora"),
    ("strategy", "rlhf"),
    ("strategy", "dpo"),
    ("compute_specs", "low_end"),
    ("compute_specs", "mid_range"),
    ("compute_specs", "high_end"),
    ("lora_r", 1),
    ("lora_r", 256),
    ("lora_alpha", 1),
    ("lora_dropout", 0),
    ("lora_dropout", 1),
    ("bnb_4bit_compute_dtype", "bfloat16"),
    ("bnb_4bit_compute_dtype", "float32"),
    ("bnb_4bit_quant_type", "fp4"),
    ("num_train_epochs", 1),
    ("gradient_accumulation_steps", 1),
    ("max_grad_norm", 0),
    ("learning_rate", 1),
    ("learning_rate", 1e-9),
    ("weight_decay", 0),
    ("optim", "adamw_torch"),
    ("optim", "adamw_8bit"),
    ("optim", "sgd"),
    ("lr_scheduler_type", "linear"),
    ("lr_scheduler_type", "constant"),
    ("lr_scheduler_type", "polynomial"),
    ("max_steps", -1),
    ("max_steps", 1),
    ("warmup_ratio", 0),
    ("warmup_ratio", 1),
    ("max_seq_length", 16),
    ("max_seq_length", None),
    ("eval_split", 0),
    ("eval_split", 0.99),
    ("eval_steps", 1),
    ("num_workers", 1),
    ("num_workers", 64),
]


@pytest.mark.parametrize(("field", "value"), VALID_BOUNDARIES)
def test_valid_boundary_accepted(field, value):
    request = TrainingRequest(**{**BASE, field: value})
    assert getattr(request, field) == value


def test_model_name_and_dataset_are_stripped():
    request = TrainingRequest(task="summarization", model_name="  forge/tiny-llama ", dataset=" d.jsonl\n")
    assert request.model_name == "forge/tiny-llama"
    assert request.dataset == "d.jsonl"


# --------------------------------------------------------------------- generate


def test_generate_defaults():
    request = GenerateRequest(model_id=1, prompt="Hello")
    assert (request.model_id, request.prompt) == (1, "Hello")
    assert request.max_new_tokens == 100
    assert request.temperature == 0.7
    assert request.top_p == 0.9


BAD_GENERATE_VALUES = [
    ("model_id", 0),
    ("model_id", -1),
    ("model_id", "abc"),
    ("prompt", ""),
    ("prompt", "   "),
    ("max_new_tokens", 0),
    ("max_new_tokens", MAX_NEW_TOKENS_CAP + 1),
    ("temperature", -0.1),
    ("temperature", 2.1),
    ("top_p", 0),
    ("top_p", 1.1),
    ("seed", 42),
]


@pytest.mark.parametrize(("field", "bad_value"), BAD_GENERATE_VALUES)
def test_generate_invalid_value_rejected(field, bad_value):
    with pytest.raises(ValidationError) as caught:
        GenerateRequest(**{"model_id": 1, "prompt": "Hello", field: bad_value})
    assert _error_fields(caught.value) == {field}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model_id", 1),
        ("max_new_tokens", 1),
        ("max_new_tokens", MAX_NEW_TOKENS_CAP),
        ("temperature", 0),
        ("temperature", 2),
        ("top_p", 1),
        ("prompt", " x "),
    ],
)
def test_generate_valid_boundary_accepted(field, value):
    request = GenerateRequest(**{"model_id": 1, "prompt": "Hello", field: value})
    assert getattr(request, field) == value


def test_generate_required_fields():
    with pytest.raises(ValidationError) as caught:
        GenerateRequest()
    assert _error_fields(caught.value) == {"model_id"}
    # A prompt is required too, unless a context and a question stand in for it.
    with pytest.raises(ValidationError, match="send `prompt`"):
        GenerateRequest(model_id=1, prompt=None)


# ---------------------------------------------------------------------- utc_iso


def test_utc_iso_now_parses_back():
    text = utc_iso()
    assert text.endswith("Z")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - parsed).total_seconds()) < 60


def test_utc_iso_converts_to_utc():
    moment = datetime(2024, 3, 1, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    text = utc_iso(moment)
    assert text == "2024-03-01T12:30:05.123456Z"
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == moment


# ------------------------------------------------------------- cross-field rules


@pytest.mark.parametrize("strategy", ["dpo", "rlhf"])
@pytest.mark.parametrize("task", ["summarization", "extractive-question-answering"])
def test_preference_strategies_need_text_generation(task, strategy):
    with pytest.raises(ValidationError) as caught:
        TrainingRequest(task=task, model_name="forge/tiny-llama", dataset="d.jsonl", strategy=strategy)
    message = str(caught.value)
    assert "text-generation" in message and "task" in message and strategy in message


@pytest.mark.parametrize("strategy", ["dpo", "rlhf"])
def test_preference_strategies_accept_text_generation(strategy):
    request = TrainingRequest(task="text-generation", model_name="m", dataset="d.jsonl", strategy=strategy)
    assert request.strategy == strategy


def test_qlora_needs_a_quantization():
    with pytest.raises(ValidationError) as caught:
        TrainingRequest(task="text-generation", model_name="m", dataset="d.jsonl", strategy="qlora",
                        use_4bit=False, use_8bit=False)
    assert "use_4bit or use_8bit" in str(caught.value)


def test_generate_request_takes_qa_context_and_question():
    request = GenerateRequest(model_id=1, prompt="Where?", context="It is in Oslo.", question="Where is it?")
    assert (request.context, request.question) == ("It is in Oslo.", "Where is it?")
    with pytest.raises(ValidationError):
        GenerateRequest(model_id=1, prompt="Where?", context="")


def test_a_context_and_a_question_need_no_prompt_but_anything_else_does():
    asked = GenerateRequest(model_id=1, context="It is in Oslo.", question="Where is it?")
    assert asked.prompt is None
    for fields in ({}, {"question": "Where is it?"}, {"context": "It is in Oslo."}):
        with pytest.raises(ValidationError, match="send `prompt`"):
            GenerateRequest(model_id=1, **fields)


def test_a_model_update_changes_what_was_sent_and_never_blanks_a_name():
    from forge.schemas import ModelUpdate

    assert ModelUpdate(name="  support-bot ").model_dump(include={"name"}) == {"name": "support-bot"}
    assert ModelUpdate(description="").model_fields_set == {"description"}
    for body in ({}, {"name": None}, {"name": "   "}, {"name": ""}, {"path": "/x"}):
        with pytest.raises(ValidationError):
            ModelUpdate(**body)
