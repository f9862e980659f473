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
