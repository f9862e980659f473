"""Built-in models that need no download: tiny, random, and built on first use.

The service must run end to end (train, register, serve, play) on machines with no
Hugging Face Hub access, so a few base models are generated locally instead of fetched.
They are real `transformers` models with real BPE tokenizers, just far too small to be
useful; they exist for tests, demos and smoke runs. A build is deterministic, so every
worker that builds its own copy gets the same weights and the same tokenizer.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import random
import shutil
import tempfile

from filelock import FileLock

BUILTIN_MODELS: dict[str, str] = {
    "forge/tiny-llama": "Tiny random-init Llama (2 layers, hidden 64) with a ~700-token byte-level BPE tokenizer",
}

# Bump when the recipe changes: a cached build with another version is rebuilt.
_BUILD_VERSION = 2
# Wider than the usual 0.02: behind the final RMSNorm the logits of a model this narrow
# would otherwise be nearly flat, and a LoRA could hardly move them.
_INIT_STD = 0.2
_SEED = 1234
_MARKER = "forge_builtin.json"
_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
# An upper bound: the trainer stops early (~720) once the small corpus has no pairs left.
_VOCAB_SIZE = 768
_MAX_LEN = 512


def is_builtin(name: str) -> bool:
    return name in BUILTIN_MODELS


def _slug(name: str) -> str:
    return name.replace("/", "--")


def _marker_ok(directory: pathlib.Path, name: str) -> bool:
    try:
        marker = json.loads((directory / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("name") == name and marker.get("version") == _BUILD_VERSION


def ensure_builtin(name: str, cache_dir: pathlib.Path) -> pathlib.Path:
    """Build the model into cache_dir/<slug> on first use and return that directory.

    The directory is loadable with transformers.AutoModelForCausalLM.from_pretrained(dir)
    and AutoTokenizer.from_pretrained(dir). Raises KeyError for an unknown name.
    """
    if name not in BUILTIN_MODELS:
        raise KeyError(f"unknown built-in model {name!r}; known: {sorted(BUILTIN_MODELS)}")
    cache_dir = pathlib.Path(cache_dir)
    slug = _slug(name)
    target = cache_dir / slug
    # The final directory only ever appears by rename, with its marker already inside,
    # so a marker seen without the lock is a complete build.
    if _marker_ok(target, name):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / f"{slug}.lock")):
        if _marker_ok(target, name):  # another process built it while we waited
            return target
        # Holding the lock means no build is in flight: leftovers are from crashed builds.
        for stale in cache_dir.glob(f".{slug}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{slug}.tmp-", dir=cache_dir))
        try:
            _build_tiny_llama(tmp)
            marker = {"name": name, "seed": _SEED, "version": _BUILD_VERSION}
            (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            # mkdtemp (and save_pretrained for the weights) leave things owner-only, unlike
            # a normal model cache that other local users or services may read.
            for path in [tmp, *tmp.iterdir()]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            if target.exists():  # an old version or a half-written copy without a marker
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --- corpus -------------------------------------------------------------------------

_PEOPLE = ("cat dog friend teacher team model bird farmer robot student engineer doctor painter "
           "neighbour child baker driver writer pilot gardener scientist musician captain").split()
_THINGS = ("ball letter house apple river book car bread tree coat program dataset window garden "
           "bridge mountain question answer picture kitchen computer message story island "
           "bottle lantern notebook engine village forest harbour ticket").split()
_VERBS = ("sees likes finds builds reads writes moves opens cleans paints carries follows watches "
          "learns remembers explains describes repairs understands discovers").split()
_PLACES = ("park home sea hill city school bridge kitchen window lab market station library "
           "office beach").split()
_TIMES = ["today", "every morning", "at night", "on Monday", "in the summer", "after lunch",
          "before dinner", "during the winter", "once again", "this afternoon"]
_ADJECTIVES = ("happy quiet busy tired bright careful hungry curious red green blue tall small "
               "old new warm cold beautiful strange wonderful important").split()
_TEMPLATES = [
    "The {a} {p} {v} the {t} near the {l}.",
    "A {p} {v} a {a} {t} {T}.",
    "Does the {p} really like the {a} {t}?",
    "The {p} is {a} {T}, so the {p} {v} the {t}.",
    "When the {p} was {a}, the {p} {v} a {t} at the {l}.",
    "I think my {p} {v} the {t}!",
    "Yesterday the {p} {v} the {t} in the {l}, and it was {a}.",
    "\"Where is the {t}?\" asked the {a} {p}.",
]


def _corpus() -> list[str]:
    # A private Random with a fixed seed keeps the corpus, and so the merges, reproducible.
    rng = random.Random(_SEED)
    lines = []
    for _ in range(4000):
        line = rng.choice(_TEMPLATES).format(
            p=rng.choice(_PEOPLE), t=rng.choice(_THINGS), v=rng.choice(_VERBS), l=rng.choice(_PLACES),
            T=rng.choice(_TIMES), a=rng.choice(_ADJECTIVES))
        lines.append(line[0].upper() + line[1:])
    # Plain sums so digits and numbers show up too.
    lines += [f"{a} plus {b} is {a + b}." for a, b in itertools.product(range(12), repeat=2)]
    return lines


# --- build --------------------------------------------------------------------------

def _build_tiny_llama(out: pathlib.Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE, special_tokens=_SPECIALS, show_progress=False,
        # The full byte alphabet means any text encodes without <unk> and round-trips.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_corpus(), trainer=trainer)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=_MAX_LEN, clean_up_tokenization_spaces=False)
    tokenizer.save_pretrained(out)

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=_MAX_LEN,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        initializer_range=_INIT_STD)
    # fork_rng keeps the caller's global torch RNG untouched by our fixed seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
