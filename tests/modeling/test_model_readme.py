"""The README.md model card of a downloaded model: what a user reads about it, rendered from forge.json."""

from __future__ import annotations

import json

from forge.modeling.model_card import MergeOrigin, ModelCard, readme_text


def _card(**changes) -> ModelCard:
    fields = {
        "job_id": "train_3f2a", "task": "text-generation", "strategy": "sft", "model_kind": "causal-lm",
        "base_model": "meta-llama/Llama-3.2-1B", "base_model_source": "meta-llama/Llama-3.2-1B",
        "request": {"task": "text-generation", "model_name": "meta-llama/Llama-3.2-1B", "provider": "huggingface",
                    "strategy": "sft", "dataset": "support_faq.jsonl", "learning_rate": 0.0002, "lora_r": 16,
                    "num_train_epochs": 3, "max_seq_length": None},
        "options": {"optim": "adamw_torch"},
        "metrics": {"final_loss": 0.234, "perplexity": 1.263, "train_steps": 120},
        "versions": {"transformers": "5.24.0", "trl": "1.16.0", "peft": "0.21.2", "unsloth": None},
    }
    return ModelCard(**{**fields, **changes})


def _front_matter(text: str) -> list[str]:
    assert text.startswith("---\n")
    return text.split("---\n")[1].splitlines()


def test_an_adapters_readme_says_what_it_is_and_how_it_was_trained():
    text = readme_text(_card(), name="support-bot", description="Answers our FAQ.")
    assert _front_matter(text)[:4] == ['base_model: "meta-llama/Llama-3.2-1B"', "library_name: peft",
                                       "pipeline_tag: text-generation", "tags:"]
    assert '- "lora"' in _front_matter(text) and '- "base_model:adapter:meta-llama/Llama-3.2-1B"' in text
    assert "\n# support-bot\n\nAnswers our FAQ.\n" in text
    for line in ("- **Base model:** `meta-llama/Llama-3.2-1B`", "- **Dataset:** `support_faq.jsonl`",
                 "- **Task:** text-generation", "- **Strategy:** sft", "- **Provider:** huggingface",
                 "| learning_rate | 0.0002 |", "| lora_r | 16 |", "| num_train_epochs | 3 |",
                 "| max_seq_length | — |", "| final_loss | 0.234 |", "| perplexity | 1.263 |",
                 "| train_steps | 120 |", 'base = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-3.2-1B")',
                 'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
                 "transformers 5.24.0, trl 1.16.0, peft 0.21.2"):
        assert line in text.splitlines(), line
    # What was trained is said once, above; the hyperparameter table holds only how.
    assert "| dataset |" not in text and "| task |" not in text
    assert "quantized" not in text


def test_a_qlora_adapter_says_how_its_base_was_quantized():
    card = _card(strategy="qlora", options={"quantize_4bit": True}, request={**_card().request, "strategy": "qlora",
                                                                          "bnb_4bit_quant_type": "fp4"})
    assert "- **Base quantized for training:** 4-bit fp4" in readme_text(card, name="q").splitlines()


def test_a_merged_models_readme_is_a_transformers_model_that_needs_no_peft():
    origin = MergeOrigin(adapter_model_id=3, adapter_model_name="support-bot", dtype="bfloat16",
                         quantization_dropped="4-bit nf4")
    text = readme_text(_card(strategy="qlora", merged=origin), name="support-bot-merged")
    assert "library_name: transformers" in _front_matter(text)
    assert '- "lora"' not in text and "PeftModel" not in text
    assert 'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")' in text.splitlines()
    assert "LoRA adapter of model 3 (`support-bot`) merged into its weights, saved in bfloat16" in text
    assert "merged onto the base in its original precision" in text
    assert "- **Base quantized for training:** 4-bit nf4" in text.splitlines()


def test_the_task_picks_the_auto_class_and_the_pipeline_tag():
    card = _card(task="extractive-question-answering", model_kind="question-answering")
    text = readme_text(card, name="qa")
    assert "pipeline_tag: question-answering" in _front_matter(text)
    assert "AutoModelForQuestionAnswering.from_pretrained" in text


def test_odd_names_stay_valid_front_matter_and_tables():
    card = _card(base_model='org/model: "v2" #1', metrics={"a|b": None})
    text = readme_text(card, name="x")
    assert _front_matter(text)[0] == "base_model: " + json.dumps('org/model: "v2" #1')
    assert "| a\\|b | — |" in text and "No metrics" not in text
    assert "No metrics were recorded." in readme_text(_card(metrics={}), name="x")


def test_a_merged_card_keeps_its_origin_and_an_adapter_card_its_layout(tmp_path):
    origin = MergeOrigin(adapter_model_id=3, adapter_model_name="a", dtype="float32")
    merged = _card(merged=origin)
    merged.write(tmp_path)
    assert ModelCard.read(tmp_path) == merged and ModelCard.read(tmp_path).quantization() is None
    assert "merged" not in json.loads(_card().to_json())
