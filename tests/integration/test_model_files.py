"""A model leaves the service: downloaded as a .tar.gz, merged into its base, both used with plain libraries.

Over HTTP on the session's `trained_models` (conftest.py): a download, extracted, loads
with transformers + PEFT alone and answers as the playground does; a merge is a new
model of kind `merged` that transformers loads alone, computes what base + adapter
computed, and the playground serves under its own id. No test here deletes a shared
model (the merged models this module makes are its own).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from support import Service, assert_error_shape

pytestmark = pytest.mark.integration

PROMPT = "What is 3 plus 4?"
MAX_NEW_TOKENS = 12


def _base_dir(service: Service) -> Path:
    """The built-in base the service trained on, as its files lie (the service built it)."""
    from forge.builtin import ensure_builtin

    return ensure_builtin("forge/tiny-llama", service.home / "builtin")


def _playground(service: Service, model_id: int) -> str:
    body = {"model_id": model_id, "prompt": PROMPT, "max_new_tokens": MAX_NEW_TOKENS, "temperature": 0}
    response = service.post("/api/playground/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["generated_text"]


def _greedy(model, tokenizer) -> str:
    """What the playground does for PROMPT at temperature 0, with plain transformers."""
    import torch

    from forge.modeling.prompts import causal_prompt

    ids = tokenizer(causal_prompt("text-generation", PROMPT, tokenizer), return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW_TOKENS,
                                do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True)


@pytest.fixture(scope="module")
def merged(service: Service, trained_models: list[dict]) -> dict:
    """POST /api/models/{id}/merge of the first shared model: the response's body."""
    response = service.post(f"/api/models/{trained_models[0]['model_id']}/merge", timeout=600)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_download_is_the_model_folder_with_a_readme_card(service: Service, trained_models: list[dict]):
    model_id = trained_models[0]["model_id"]
    detail = service.get(f"/api/models/{model_id}").json()
    response = service.get(f"/api/models/{model_id}/download")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    assert response.headers["content-disposition"] == f'attachment; filename="{detail["name"]}.tar.gz"'
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        names = set(archive.getnames())
        readme = archive.extractfile(f"{detail['name']}/README.md").read().decode()
    assert {f"{detail['name']}/{f}" for f in ("adapter_config.json", "adapter_model.safetensors", "forge.json",
                                             "tokenizer.json", "tokenizer_config.json", "README.md")} <= names
    assert readme.startswith('---\nbase_model: "forge/tiny-llama"\nlibrary_name: peft\n')
    dataset = service.get(f"/api/jobs/{trained_models[0]['job_id']}").json()["request"]["dataset"]
    for line in ("- **Base model:** `forge/tiny-llama`", f"- **Dataset:** `{dataset}`", "- **Task:** text-generation",
                 "- **Strategy:** sft", "| learning_rate | 0.005 |", "| max_steps | 3 |",
                 f"| final_loss | {detail['metrics']['final_loss']} |"):
        assert line in readme.splitlines(), line


def test_a_downloaded_adapter_loads_with_peft_and_answers_as_the_playground_does(
        service: Service, trained_models: list[dict], tmp_path: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_id = trained_models[0]["model_id"]
    folder = service.client.download_model(model_id, tmp_path)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(_base_dir(service)), str(folder)).eval()
    assert _greedy(model, AutoTokenizer.from_pretrained(folder)) == _playground(service, model_id)


def test_a_merge_registers_a_new_model_of_kind_merged(service: Service, trained_models: list[dict], merged: dict):
    source_id = trained_models[0]["model_id"]
    source = service.get(f"/api/models/{source_id}").json()
    model = merged["model"]
    assert (merged["status"], merged["source_model_id"]) == ("merged", source_id)
    assert merged["message"] == f"Merged model {source_id}'s adapter into forge/tiny-llama, saved in float32"
    assert model["kind"] == "merged" and model["id"] not in {m["model_id"] for m in trained_models}
    assert model["name"].startswith(f"{source['name']}-merged")
    assert (model["base_model"], model["task"], model["strategy"]) == ("forge/tiny-llama", "text-generation", "sft")
    assert model["metrics"] == source["metrics"] and source["kind"] == "adapter"
    assert service.get(f"/api/models/{model['id']}").json() == model
    kinds = {m["id"]: m["kind"] for m in service.get("/api/models").json()["models"]}
    assert (kinds[source_id], kinds[model["id"]]) == ("adapter", "merged")


def test_the_merged_model_loads_with_transformers_alone_and_computes_base_plus_adapter(
        service: Service, trained_models: list[dict], merged: dict, tmp_path: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = service.client.download_model(merged["model"]["id"], tmp_path / "merged")
    assert (merged_dir / "model.safetensors").is_file() and not (merged_dir / "adapter_config.json").exists()
    assert "library_name: transformers" in (merged_dir / "README.md").read_text()
    adapter_dir = service.client.download_model(trained_models[0]["model_id"], tmp_path / "adapter")

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    inputs = tokenizer("### Instruction:\nWhat is 3 plus 4?\n\n### Response:\n", return_tensors="pt")
    standalone = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(_base_dir(service)),
                                             str(adapter_dir)).eval()
    with torch.inference_mode():
        expected, got = with_adapter(**inputs).logits, standalone(**inputs).logits
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_the_playground_serves_the_merged_model_under_its_own_id(
        service: Service, trained_models: list[dict], merged: dict):
    assert _playground(service, merged["model"]["id"]) == _playground(service, trained_models[0]["model_id"])


def test_a_merged_model_is_not_merged_again(service: Service, merged: dict):
    body = assert_error_shape(service.post(f"/api/models/{merged['model']['id']}/merge", timeout=120), 409)
    assert "already a merged model" in body["detail"]


def test_unknown_models_are_404_and_bad_ids_400(service: Service):
    for method, path in (("get", "/api/models/999999/download"), ("post", "/api/models/999999/merge")):
        body = assert_error_shape(service.request(method, path), 404)
        assert body["detail"] == "model 999999 does not exist"
        assert_error_shape(service.request(method, path.replace("999999", "abc")), 400)
