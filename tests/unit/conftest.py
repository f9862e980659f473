"""What the unit tests of the shared modules share: storages (local; local and S3) and a real SQLite registry."""

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


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path: Path) -> Storage:
    """A storage on a local path, then on an S3 bucket (moto's loopback server: tests/conftest.py)."""
    location = str(tmp_path / "shared") if request.param == "local" else (
        request.getfixturevalue("s3_location")(f"unit-{tmp_path.name}"))
    storage = Storage(Settings.from_env({"FORGE_HOME": str(tmp_path / "home"), "FORGE_STORAGE": location}))
    storage.ensure_dirs()
    return storage
