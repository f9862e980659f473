"""Admission without Ray: capacity, hardware fit, datasets and substitutions, on real files and a real registry."""

from __future__ import annotations

import pytest

from forge.errors import BadRequest, Conflict
from forge.schemas import TrainingRequest
from forge.training.options import Hardware

pytestmark = pytest.mark.anyio

CPU_ONLY = Hardware(cpus=2)
PAIRS = [{"input": f"question {i}", "output": f"answer {i}"} for i in range(12)]
PREFERENCES = [{"prompt": f"say {i}", "chosen": f"yes {i}", "rejected": f"no {i}"} for i in range(12)]


def request(**fields) -> TrainingRequest:
    return TrainingRequest(**{"task": "text-generation", "model_name": "forge/tiny-llama", "dataset": "pairs.jsonl",
                              **fields})


async def test_a_full_service_refuses_with_409_naming_the_running_jobs(admission, upload):
    upload("pairs.jsonl", PAIRS, "pairs")
    with pytest.raises(Conflict) as refused:
        await admission.prepare(request(), CPU_ONLY, running={"train_abc": object()})
    assert refused.value.status_code == 409
    assert "train_abc" in refused.value.detail and "at most 1 job(s)" in refused.value.detail
    assert (await admission.prepare(request(), CPU_ONLY, running={})).dataset_format == "pairs"


async def test_workers_beyond_the_cpus_of_a_cpu_only_cluster_are_refused(admission, upload):
    upload("pairs.jsonl", PAIRS, "pairs")
    with pytest.raises(BadRequest, match="num_workers=3 needs 3 CPUs; the cluster has 2"):
        await admission.prepare(request(num_workers=3), CPU_ONLY, running={})
    assert (await admission.prepare(request(num_workers=2), CPU_ONLY, running={})).request.num_workers == 2
    # With GPUs each worker takes one, and Ray Train schedules them: no CPU rule applies.
    on_gpus = await admission.prepare(request(num_workers=3), Hardware(gpus=4, cpus=2), running={})
    assert on_gpus.options.use_gpu and on_gpus.options.compute_specs == "high_end"


async def test_an_uploaded_dataset_of_the_wrong_format_is_refused_naming_it(admission, upload):
    upload("prefs.jsonl", PREFERENCES, "preference")
    with pytest.raises(BadRequest, match="holds preference rows; task 'text-generation' with strategy 'sft'"):
        await admission.prepare(request(dataset="prefs.jsonl"), CPU_ONLY, running={})
    upload("pairs.jsonl", PAIRS, "pairs")
    with pytest.raises(BadRequest, match="holds pairs rows; .* strategy 'dpo' trains on preference rows"):
        await admission.prepare(request(strategy="dpo"), CPU_ONLY, running={})
    dpo = await admission.prepare(request(dataset="prefs.jsonl", strategy="dpo"), CPU_ONLY, running={})
    assert dpo.dataset_format == "preference"


async def test_a_dataset_under_an_allowed_root_is_read_and_checked(admission, dataset_file, dataset_root):
    path = dataset_file("train.jsonl", PAIRS)
    prepared = await admission.prepare(request(dataset=str(path)), CPU_ONLY, running={})
    assert (prepared.dataset_location, prepared.dataset_format) == (str(path), "pairs")
    broken = dataset_root / "broken.jsonl"
    broken.write_text('{"input": "a", "output": "b"}\nnot json\n')
    with pytest.raises(BadRequest, match="is not a valid dataset") as refused:
        await admission.prepare(request(dataset=str(broken)), CPU_ONLY, running={})
    assert refused.value.extra["validation"]["valid"] is False


async def test_an_unknown_dataset_is_refused(admission, dataset_root):
    with pytest.raises(BadRequest, match="neither an uploaded dataset nor an absolute path"):
        await admission.prepare(request(dataset="nowhere.jsonl"), CPU_ONLY, running={})
    with pytest.raises(BadRequest, match="does not exist"):
        await admission.prepare(request(dataset=str(dataset_root / "missing.jsonl")), CPU_ONLY, running={})


async def test_a_misspelt_dataset_is_refused_naming_the_closest_upload(admission, upload):
    upload("alpaca.jsonl", PAIRS, "pairs")
    with pytest.raises(BadRequest) as refused:
        await admission.prepare(request(dataset="alpca.jsonl"), CPU_ONLY, running={})
    assert refused.value.detail == "dataset 'alpca.jsonl' does not exist; did you mean 'alpaca.jsonl'?"
    # An upload of alpaca.csv was stored as alpaca.jsonl: naming the CSV points there too.
    with pytest.raises(BadRequest, match="did you mean 'alpaca.jsonl'"):
        await admission.prepare(request(dataset="alpaca.csv"), CPU_ONLY, running={})


async def test_text_rows_train_text_generation_sft_and_qlora_only(admission, upload):
    upload("stories.jsonl", [{"text": f"Once upon a time, story {i}."} for i in range(12)], "text")
    for strategy in ("sft", "qlora"):
        prepared = await admission.prepare(request(dataset="stories.jsonl", strategy=strategy), CPU_ONLY, running={})
        assert prepared.dataset_format == "text"
    with pytest.raises(BadRequest, match="holds text rows; task 'summarization' with strategy 'sft' trains on pairs"):
        await admission.prepare(request(dataset="stories.jsonl", task="summarization"), CPU_ONLY, running={})


async def test_substitutions_come_back_as_notes(admission, upload):
    upload("pairs.jsonl", PAIRS, "pairs")
    prepared = await admission.prepare(request(optim="paged_adamw_32bit", bf16=True), CPU_ONLY, running={})
    assert prepared.options.optim == "adamw_torch" and not prepared.options.bf16
    assert "optim paged_adamw_32bit needs CUDA; using adamw_torch on this CPU-only cluster" in prepared.notes
    assert "fp16/bf16 mixed precision needs a GPU; training in float32" in prepared.notes
    on_gpu = await admission.prepare(request(optim="paged_adamw_32bit"), Hardware(gpus=1, cpus=2), running={})
    assert on_gpu.options.optim == "paged_adamw_32bit"


async def test_an_unavailable_provider_and_an_unknown_model_are_refused(admission, upload):
    upload("pairs.jsonl", PAIRS, "pairs")
    with pytest.raises(BadRequest, match="provider 'unsloth' is not available: no unsloth venv"):
        await admission.prepare(request(provider="unsloth"), CPU_ONLY, running={})
    with pytest.raises(BadRequest, match="no such directory exists"):
        await admission.prepare(request(model_name="/no/such/model"), CPU_ONLY, running={})


async def test_the_job_spec_points_into_storage(admission, upload, storage, settings):
    upload("pairs.jsonl", PAIRS, "pairs")
    spec = admission.job_spec("train_x", await admission.prepare(request(), CPU_ONLY, running={}))
    assert spec.output_dir == storage.uri(storage.staging_dir("train_x"))
    assert spec.dataset_path == storage.uri(storage.dataset_path("pairs.jsonl"))
    assert (spec.max_failures, spec.manager_name) == (settings.max_worker_failures, settings.manager_name)
