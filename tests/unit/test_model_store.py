"""Models without Ray: renamed (names unique), described, deleted with their files."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge.errors import Conflict, NotFound
from forge.model_store import ModelStore
from forge.schemas import ModelUpdate

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(local_storage, storage_registry) -> ModelStore:
    return ModelStore(storage_registry, local_storage)


def _register(store: ModelStore, name: str) -> int:
    def place_files(model_id: int) -> str:
        folder = Path(store.storage.model_dir(model_id))
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"x" * 10)
        return store.storage.display(str(folder))

    return store.registry.add_model(
        place_files=place_files, size_bytes=lambda shown: 10, name=name, base_model="forge/tiny-llama",
        task="text-generation", provider="huggingface", strategy="sft", training_params={}, metrics={}).id


async def test_a_model_is_renamed_unless_another_has_the_name(store):
    first, second = _register(store, "tiny-llama-sft-a"), _register(store, "tiny-llama-sft-b")
    renamed = store.update(first, ModelUpdate(name="support-bot", description="FAQ answers"))
    assert (renamed.name, renamed.description) == ("support-bot", "FAQ answers")
    assert store.update(first, ModelUpdate(name="support-bot")).name == "support-bot"  # its own name: fine
    with pytest.raises(Conflict, match="model .* is already named 'support-bot'"):
        store.update(second, ModelUpdate(name="support-bot"))
    assert store.get(second).name == "tiny-llama-sft-b"
    # An empty description clears it; the name stays.
    cleared = store.update(first, ModelUpdate(description=""))
    assert (cleared.name, cleared.description) == ("support-bot", None)
    with pytest.raises(NotFound):
        store.update(999, ModelUpdate(name="x"))


async def test_a_deleted_model_goes_with_its_files(store):
    model_id = _register(store, "tiny-llama-sft-a")
    folder = Path(store.storage.model_dir(model_id))
    assert folder.is_dir()
    await store.delete(model_id)
    assert not folder.exists() and store.all() == []
    with pytest.raises(NotFound):
        await store.delete(model_id)


async def test_a_merge_is_a_new_self_contained_model_and_a_merged_model_is_not_merged_again(
        store, builtin_dir: Path, make_adapter, tmp_path: Path):
    import asyncio
    import shutil

    from forge.builtin import ensure_builtin
    from forge.modeling.merging import merge_adapter
    from forge.playground.responder import load_trained_model

    tiny = ensure_builtin("forge/tiny-llama", builtin_dir)
    adapter = make_adapter(tmp_path / "adapter", tiny, str(tiny), 21, ["q_proj", "v_proj"])

    def place_files(model_id: int) -> str:
        shutil.copytree(adapter, store.storage.model_dir(model_id))
        return store.storage.display(store.storage.model_dir(model_id))

    source = store.registry.add_model(
        place_files=place_files, size_bytes=lambda shown: 10, name="support-bot", base_model="forge/tiny-llama",
        task="text-generation", provider="huggingface", strategy="sft", job_id="train_21",
        training_params={"num_epochs": 1, "batch_size": 1, "learning_rate": 0.01}, metrics={"final_loss": 1.5})

    async def run_merge(spec):  # the manager runs it as a Ray task; here a thread does
        return await asyncio.to_thread(merge_adapter, spec)

    merged, message = await store.merge(source.id, run_merge)
    assert (merged.kind, merged.name, store.get(source.id).kind) == ("merged", "support-bot-merged", "adapter")
    assert (merged.base_model, merged.task, merged.strategy, merged.job_id) == (
        "forge/tiny-llama", "text-generation", "sft", "train_21")
    assert merged.metrics == {"final_loss": 1.5} and merged.training_params["learning_rate"] == 0.01
    assert merged.size_bytes > 0 and "merged into its base forge/tiny-llama" in merged.description
    assert message == f"Merged model {source.id}'s adapter into forge/tiny-llama, saved in float32"
    assert (await store.merge(source.id, run_merge))[0].name == "support-bot-merged-2"  # names stay unique
    assert not [p for p in Path(store.storage.models_dir).iterdir() if p.name.startswith(".")]  # no staging left

    with pytest.raises(Conflict, match=f"model {merged.id} is already a merged model"):
        await store.merge(merged.id, run_merge)
    with pytest.raises(NotFound):
        await store.merge(999, run_merge)

    # The merged model needs nothing of its adapter model: delete that, and it still loads and answers.
    await store.delete(source.id)
    loaded = load_trained_model(Path(store.storage.model_dir(merged.id)), builtin_dir)
    assert type(loaded.model).__name__ == "LlamaForCausalLM"
