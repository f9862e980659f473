"""Settings.from_env parsing, and dataset/model resolution in forge.sources."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from pydantic import ValidationError

from forge.errors import BadRequest
from forge.settings import DEFAULT_UNSLOTH_PYTHON, MANAGER_NAME, Settings
from forge.sources import resolve_dataset_path, resolve_model_source

# ---------------------------------------------------------------- settings


def test_settings_defaults(tmp_path):
    settings = Settings.from_env({"FORGE_HOME": str(tmp_path / "home")})
    assert settings.home == (tmp_path / "home").resolve()
    assert settings.storage == str(settings.home)
    assert settings.max_concurrent_jobs == 1
    assert settings.max_upload_mb == 1024
    assert settings.dataset_roots == []
    assert settings.api_key is None
    assert settings.trust_remote_code is False
    assert settings.stop_grace_s == 20.0
    assert settings.worker_resources == {}


def test_settings_default_home_is_dot_forge_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.home == tmp_path.resolve() / ".forge"
    assert settings.storage == str(settings.home)


def test_settings_relative_home_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"FORGE_HOME": "state/home", "FORGE_STORAGE": "big"})
    assert settings.home.is_absolute()
    assert settings.home == tmp_path.resolve() / "state" / "home"
    assert settings.storage == str(tmp_path.resolve() / "big")


def test_settings_worker_resources_from_json():
    settings = Settings.from_env({"FORGE_HOME": "/tmp/h", "FORGE_WORKER_RESOURCES": '{"A10G": 1, "memory_gb": 0.5}'})
    assert settings.worker_resources == {"A10G": 1.0, "memory_gb": 0.5}


def test_settings_object_store_uri_is_kept_as_given():
    uri = "s3://forge-bucket/prod?endpoint_override=minio.internal:9000&scheme=http"
    assert Settings.from_env({"FORGE_HOME": "/tmp/h", "FORGE_STORAGE": uri}).storage == uri


def test_settings_dataset_roots_split(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    value = os.pathsep.join([str(a), "", str(b)])
    settings = Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_DATASET_ROOTS": value})
    assert settings.dataset_roots == [a.resolve(), b.resolve()]


def test_settings_explicit_values(tmp_path):
    settings = Settings.from_env({
        "FORGE_HOME": str(tmp_path),
        "FORGE_MAX_CONCURRENT_JOBS": "3",
        "FORGE_MAX_UPLOAD_MB": "12.5",
        "FORGE_API_KEY": "s3cret",
        "FORGE_STOP_GRACE_S": "2",
    })
    assert settings.max_concurrent_jobs == 3
    assert settings.max_upload_mb == 12.5
    assert settings.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.stop_grace_s == 2.0


def test_a_spare_runner_is_kept_unless_turned_off(tmp_path):
    assert Settings.from_env({"FORGE_HOME": str(tmp_path)}).spare_runner is True
    assert Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_SPARE_RUNNER": "0"}).spare_runner is False


def test_settings_empty_api_key_means_none(tmp_path):
    assert Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_API_KEY": ""}).api_key is None


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("0", False), ("no", False), ("", False),
])
def test_settings_trust_remote_code(tmp_path, raw, expected):
    settings = Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_TRUST_REMOTE_CODE": raw})
    assert settings.trust_remote_code is expected


@pytest.mark.parametrize(("name", "value", "field"), [
    ("FORGE_MAX_CONCURRENT_JOBS", "0", "max_concurrent_jobs"),
    ("FORGE_MAX_CONCURRENT_JOBS", "many", "max_concurrent_jobs"),
    ("FORGE_MAX_UPLOAD_MB", "0", "max_upload_mb"),
    ("FORGE_STOP_GRACE_S", "-1", "stop_grace_s"),
])
def test_settings_invalid_values(tmp_path, name, value, field):
    with pytest.raises(ValidationError) as caught:
        Settings.from_env({"FORGE_HOME": str(tmp_path), name: value})
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_an_explicit_environment_is_the_only_one_read(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGE_MAX_CONCURRENT_JOBS", "5")
    assert Settings.from_env({"FORGE_HOME": str(tmp_path)}).max_concurrent_jobs == 1
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "from-os"))
    assert Settings.from_env().max_concurrent_jobs == 5
    assert Settings.from_env().home == (tmp_path / "from-os").resolve()


def test_settings_survive_pickling(tmp_path):
    # They travel to the manager actor and to every replica.
    settings = Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_API_KEY": "k", "FORGE_DATASET_ROOTS": "/data"})
    copy = pickle.loads(pickle.dumps(settings))
    assert copy == settings
    assert copy.api_key.get_secret_value() == "k"


def test_worker_resources_that_are_not_json_say_so(tmp_path):
    with pytest.raises(ValueError, match=r"FORGE_WORKER_RESOURCES is not JSON .*e.g. '\{\"A10G\": 1\}'"):
        Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_WORKER_RESOURCES": "A10G=1"})
    assert Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_WORKER_RESOURCES": ""}).worker_resources == {}


def test_empty_names_mean_the_defaults(tmp_path):
    settings = Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_MANAGER_NAME": "", "FORGE_UNSLOTH_PYTHON": ""})
    assert settings.manager_name == MANAGER_NAME
    assert settings.unsloth_python == DEFAULT_UNSLOTH_PYTHON
    named = Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_MANAGER_NAME": "second",
                               "FORGE_UNSLOTH_PYTHON": "~/u/bin/python"})
    assert named.manager_name == "second"
    assert named.unsloth_python == Path.home() / "u" / "bin" / "python"


@pytest.mark.parametrize("raw", ["0", "no", "off", "", "maybe"])
def test_a_spare_runner_is_off_for_any_other_spelling(tmp_path, raw):
    assert Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_SPARE_RUNNER": raw}).spare_runner is False


# ----------------------------------------------------------------- datasets


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


def test_dataset_inside_root(root):
    (root / "sub").mkdir()
    file = root / "sub" / "train.jsonl"
    file.write_text("{}\n")
    assert resolve_dataset_path(str(file), [root]) == file.resolve()


def test_dataset_inside_second_root(root, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    file = other / "d.jsonl"
    file.write_text("{}\n")
    assert resolve_dataset_path(str(file), [root, other]) == file.resolve()


def test_dataset_dotdot_resolved_before_check(root, tmp_path):
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    with pytest.raises(BadRequest, match="outside the allowed dataset roots"):
        resolve_dataset_path(str(root / ".." / "secret.jsonl"), [root])


def test_dataset_relative_name(root, monkeypatch):
    (root / "d.jsonl").write_text("{}\n")
    monkeypatch.chdir(root)
    with pytest.raises(BadRequest) as caught:
        resolve_dataset_path("d.jsonl", [root])
    assert "neither an uploaded dataset nor an absolute path" in caught.value.detail
    assert caught.value.status_code == 400


def test_dataset_outside_roots(root, tmp_path):
    other_root = tmp_path / "other-root"
    other_root.mkdir()
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text("{}\n")
    with pytest.raises(BadRequest) as caught:
        resolve_dataset_path(str(outside), [root, other_root])
    detail = caught.value.detail
    assert "outside the allowed dataset roots" in detail
    assert str(root) in detail and str(other_root) in detail


def test_dataset_no_roots_configured(tmp_path):
    file = tmp_path / "d.jsonl"
    file.write_text("{}\n")
    with pytest.raises(BadRequest, match="none configured"):
        resolve_dataset_path(str(file), [])


def test_dataset_symlink_escaping_root(root, tmp_path):
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    link = root / "innocent.jsonl"
    link.symlink_to(outside)
    with pytest.raises(BadRequest, match="outside the allowed dataset roots"):
        resolve_dataset_path(str(link), [root])


def test_dataset_symlink_within_root(root):
    target = root / "real.jsonl"
    target.write_text("{}\n")
    link = root / "alias.jsonl"
    link.symlink_to(target)
    assert resolve_dataset_path(str(link), [root]) == target.resolve()


def test_dataset_missing_inside_root(root):
    with pytest.raises(BadRequest, match="does not exist"):
        resolve_dataset_path(str(root / "missing.jsonl"), [root])


def test_dataset_directory_inside_root(root):
    (root / "folder").mkdir()
    with pytest.raises(BadRequest, match="does not exist"):
        resolve_dataset_path(str(root / "folder"), [root])


# ------------------------------------------------------------------- models


def test_model_builtin_unchanged():
    assert resolve_model_source("forge/tiny-llama") == "forge/tiny-llama"


def test_model_local_directory(tmp_path, monkeypatch):
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    assert resolve_model_source(str(model_dir)) == str(model_dir.resolve())
    monkeypatch.chdir(tmp_path)
    assert resolve_model_source("./my-model") == str(model_dir.resolve())


def test_model_directory_without_config(tmp_path):
    model_dir = tmp_path / "empty-model"
    model_dir.mkdir()
    with pytest.raises(BadRequest, match="has no config.json"):
        resolve_model_source(str(model_dir))


@pytest.mark.parametrize("name", ["/no/such/model", "./missing", "~/no-such-forge-model-dir", "a/b/c"])
def test_model_missing_path(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadRequest, match="not a built-in model and no such directory exists"):
        resolve_model_source(name)


def test_model_hub_id_offline_not_cached(tmp_path, monkeypatch):
    cache = tmp_path / "hf-home"
    cache.mkdir()
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadRequest) as caught:
        resolve_model_source("someone/some-model")
    assert "cache" in caught.value.detail
    assert "HF_HUB_OFFLINE" in caught.value.detail
    assert "'someone/some-model'" in caught.value.detail


def test_a_home_of_a_user_who_does_not_exist_is_a_bad_request(root):
    # Found by the schema fuzzer: "~<unknown user>" made pathlib raise, a 500.
    with pytest.raises(BadRequest, match="names no user's home directory"):
        resolve_dataset_path("~no-such-forge-user/train.jsonl", [root])
    with pytest.raises(BadRequest, match="names no user's home directory"):
        resolve_model_source("~no-such-forge-user/model")


def test_a_redeploy_names_the_variables_it_changed(tmp_path):
    earlier = Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_QUEUE_SIZE": "2", "FORGE_API_KEY": "k1"})
    assert earlier.changed_from(earlier) == []
    assert Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_QUEUE_SIZE": "2", "FORGE_API_KEY": "k1"}
                             ).changed_from(earlier) == []
    later = Settings.from_env({"FORGE_HOME": str(tmp_path), "FORGE_QUEUE_SIZE": "3", "FORGE_API_KEY": "k2",
                               "FORGE_STOP_GRACE_S": "5"})
    assert later.changed_from(earlier) == ["FORGE_QUEUE_SIZE", "FORGE_STOP_GRACE_S", "FORGE_API_KEY"]
    assert later.changed_from(earlier, ignore=frozenset({"api_key"})) == ["FORGE_QUEUE_SIZE", "FORGE_STOP_GRACE_S"]
