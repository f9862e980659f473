"""Shared by every test directory: the built-in models' folder, a model in Hub layout, and a loopback S3 endpoint.

No S3 service can be reached from the machines this suite runs on, so the one fake
the storage tests admit to is moto's standalone server: a real HTTP S3 API on
127.0.0.1, spoken to through pyarrow's S3FileSystem exactly as a bucket would be.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from wing_scheduling import WingScheduling

# Set before any test starts Ray, so every Ray worker inherits them. moto accepts any
# key; without them the AWS SDK would search for credentials (and an instance role).
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "forge-test", "AWS_SECRET_ACCESS_KEY": "forge-test",
                  "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
os.environ.update(S3_CREDENTIALS)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """--dist loadscope (what `make test` asks for) gets the wings' scheduler; other modes stay xdist's."""
    if config.getvalue("dist") == "loadscope":
        return WingScheduling(config, log)
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every test has an id of its own: pytest-xdist tells tests apart by id, and of two alike runs one."""
    ids = Counter(item.nodeid for item in session.items)
    if shared := sorted(nodeid for nodeid, count in ids.items() if count > 1):
        raise pytest.UsageError(f"tests that share an id (give each its own): {shared}")


@pytest.fixture(scope="session")
def builtin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where in-process tests build the built-in tiny models: once per session, shared by every wing."""
    return tmp_path_factory.mktemp("builtin")


# A chat template in the ChatML form Qwen2 checkpoints ship.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def hub_model_dir(builtin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local folder laid out like a real Hub checkpoint, loaded by path.

    No Hub can be reached from here, so this stands in for a downloaded Qwen2-family
    model: random weights of a real architecture saved in bfloat16 with
    `save_pretrained` (config.json says so), and a tokenizer with a chat template, an
    end-of-turn EOS token and no pad token, as many real checkpoints have.
    """
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from forge.builtin import ensure_builtin

    folder = tmp_path_factory.mktemp("hub") / "acme--qwen2-mini"
    tokenizer = AutoTokenizer.from_pretrained(ensure_builtin("forge/tiny-llama", builtin_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = None
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(folder)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    model.to(torch.bfloat16).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def s3_endpoint():
    """host:port of a moto S3 server on loopback, for this test session."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the moto S3 server did not start")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def s3_location(s3_endpoint):
    """A function giving a fresh FORGE_STORAGE URI (s3://forge-tests/<prefix>?…) on the endpoint."""
    import pyarrow.fs as pafs

    bucket = "forge-tests"
    pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http", allow_bucket_creation=True).create_dir(bucket)
    return lambda prefix: f"s3://{bucket}/{prefix}?endpoint_override={s3_endpoint}&scheme=http"


def _random_adapter(folder: Path, base_dir: Path, base_source: str, seed: int, targets: list[str],
                    card: dict | None = None, **lora: object) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge.modeling.model_card import ModelCard

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                           LoraConfig(**{"r": 4, "target_modules": targets, "init_lora_weights": False, **lora}))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(folder)
    ModelCard(**{"job_id": f"train_{seed}", "task": "text-generation", "model_kind": "causal-lm",
                 "base_model": base_source, "base_model_source": base_source, "request": {}, "options": {},
                 "metrics": {}, "versions": {}, **(card or {})}).write(folder)
    return folder


@pytest.fixture(scope="session")
def make_adapter():
    """Writes a trained model's folder of a causal LM: a real LoRA adapter with random (non-zero) weights,
    its tokenizer and its forge.json (`card` overrides the card's fields):
    make_adapter(folder, base_dir, base_source, seed, target_modules, card=None, **LoraConfig fields)."""
    return _random_adapter
