"""What the unit tests of the shared modules share: a local storage and a real SQLite registry on tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge.registry import Registry
from forge.settings import Settings
from forge.storage import Storage


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the manager's stores run on asyncio


@pytest.fixture
def local_storage(tmp_path: Path) -> Storage:
    storage = Storage(Settings(home=tmp_path / "home", storage=str(tmp_path / "storage")))
    storage.ensure_dirs()
    return storage


@pytest.fixture
def storage_registry(local_storage: Storage):
    registry = Registry(local_storage.database)
    yield registry
    registry.close()
