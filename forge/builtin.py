"""Built-in models that need no download: tiny, random, and built on first use.

The service must run end to end (train, register, serve, play) on machines with no
Hugging Face Hub access, so a few base models are generated locally instead of fetched.
They are real `transformers` models (a causal LM, a seq2seq LM and an extractive QA
encoder) with real trained tokenizers, just far too small to be useful; they exist for
tests, demos and smoke runs. A build is deterministic, so every worker that builds its
own copy gets the same weights and the same tokenizer.
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
    "forge/tiny-llama": "Tiny random-init Llama (2 layers, hidden 64) with a 768-token byte-level BPE tokenizer",
    "forge/tiny-t5": "Tiny random-init T5 encoder-decoder (2+2 layers, d_model 64) with a 768-token byte-level "
                     "BPE tokenizer, for seq2seq tasks such as summarization",
    "forge/tiny-bert": "Tiny random-init BERT with a span head (2 layers, hidden 64) and an uncased WordPiece "
                       "tokenizer, for extractive question answering",
}
# What each built-in model is, so a caller can pick the AutoModel class without loading it.
BUILTIN_KINDS: dict[str, str] = {
    "forge/tiny-llama": "causal-lm",
    "forge/tiny-t5": "seq2seq-lm",
    "forge/tiny-bert": "question-answering",
}

# Bump when a recipe or the corpus changes: a cached build with another version is rebuilt.
_BUILD_VERSION = 3
# tiny-llama: wider than the usual 0.02, because behind the final RMSNorm the logits of a
# model this narrow would otherwise be nearly flat, and a LoRA could hardly move them.
_INIT_STD = 0.2
# T5 scales its init by d_model itself; the default factor 1.0 gives logits with std ~1, and
# a LoRA on q/v takes a toy summarization task's loss from 7.3 to 2.9 in 150 steps (with 0.1
# the logits are flat and the loss does not move; with 3.0 it starts at ~29).
_T5_INIT_FACTOR = 1.0
# BERT's usual 0.02: post-LayerNorm and with a span head that is trained in full, the
# logits are not the bottleneck, and a wider init (0.2) trained no better in toy QA runs.
_BERT_INIT_STD = 0.02
_SEED = 1234
_MARKER = "forge_builtin.json"
# An upper bound for the byte-level BPEs: the trainer stops once it reaches it.
_VOCAB_SIZE = 768
# An upper bound for WordPiece: the trainer stops early (~1050) once every corpus word is one token.
_WORDPIECE_VOCAB_SIZE = 2048
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

    The directory is loadable with AutoTokenizer.from_pretrained(dir) and with the
    AutoModel class that BUILTIN_KINDS[name] names: AutoModelForCausalLM ("causal-lm"),
    AutoModelForSeq2SeqLM ("seq2seq-lm") or AutoModelForQuestionAnswering
    ("question-answering"). Raises KeyError for an unknown name.
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
            if _on_a_distributed_rank_other_than_0():
                # transformers writes no weights from such a process (a training worker of rank
                # 1 on a node whose FORGE_HOME has no copy yet): build in a fresh process.
                _build_in_subprocess(name, tmp)
            else:
                _BUILDERS[name](tmp)
            marker = {"name": name, "kind": BUILTIN_KINDS[name], "seed": _SEED, "version": _BUILD_VERSION}
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


def _on_a_distributed_rank_other_than_0() -> bool:
    import sys

    if "torch" not in sys.modules:  # torch.distributed cannot be initialized without torch
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_rank() != 0


def _build_in_subprocess(name: str, out: pathlib.Path) -> None:
    import subprocess
    import sys

    # Without the launcher's variables the child is a plain single process.
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"}}
    code = "import pathlib, sys; from forge.builtin import _BUILDERS; _BUILDERS[sys.argv[1]](pathlib.Path(sys.argv[2]))"
    subprocess.run([sys.executable, "-c", code, name, str(out)], env=env, check=True, capture_output=True)


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
# Names, towns, months and years give question answering and summaries something to point at.
_NAMES = ("Alice Bob Carol David Emma Frank Grace Henry Irene Jack Karen Leo Maria Noah Olivia Peter "
          "Quinn Rosa Samuel Tara").split()
_TOWNS = ("Paris London Berlin Rome Tokyo Lima Oslo Cairo Madrid Vienna Dublin Lisbon Prague Athens "
          "Toronto Sydney").split()
_MONTHS = ("January February March April May June July August September October November "
           "December").split()
_TEMPLATES = [
    "The {a} {p} {v} the {t} near the {l}.",
    "A {p} {v} a {a} {t} {T}.",
    "Does the {p} really like the {a} {t}?",
    "The {p} is {a} {T}, so the {p} {v} the {t}.",
    "When the {p} was {a}, the {p} {v} a {t} at the {l}.",
    "I think my {p} {v} the {t}!",
    "Yesterday the {p} {v} the {t} in the {l}, and it was {a}.",
    "\"Where is the {t}?\" asked the {a} {p}.",
    "{N} lives in {C} and works as a {p} at the {l}.",
    "In {M} {Y}, {N} {v} a {a} {t} in {C}.",
    "Who {v} the {t}? {N} does, every day in {M}.",
    "The {t} in {C} was built in {Y} by a {a} {p} called {N}.",
    "{N} and {N2} travelled from {C} to {C2} in {M}; the trip took {n} days.",
    "What did {N} find at the {l}? A {a} {t}, {n} minutes after {N2} left.",
]


def _corpus() -> list[str]:
    # A private Random with a fixed seed keeps the corpus, and so the merges, reproducible.
    rng = random.Random(_SEED)
    lines = []
    for _ in range(6000):
        line = rng.choice(_TEMPLATES).format(
            p=rng.choice(_PEOPLE), t=rng.choice(_THINGS), v=rng.choice(_VERBS), l=rng.choice(_PLACES),
            T=rng.choice(_TIMES), a=rng.choice(_ADJECTIVES), N=rng.choice(_NAMES), N2=rng.choice(_NAMES),
            C=rng.choice(_TOWNS), C2=rng.choice(_TOWNS), M=rng.choice(_MONTHS), Y=rng.randint(1800, 2030),
            n=rng.randint(2, 99))
        lines.append(line[0].upper() + line[1:])
    # Plain sums so digits and numbers show up too.
    lines += [f"{a} plus {b} is {a + b}." for a, b in itertools.product(range(12), repeat=2)]
    return lines


# --- build --------------------------------------------------------------------------
# Heavy imports stay inside these functions so that importing the module stays cheap.

def _byte_level_bpe(specials: list[str]):
    """A byte-level BPE tokenizer trained on the corpus; specials get ids 0.. in order."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE, special_tokens=specials, show_progress=False,
        # The full byte alphabet means any text encodes without <unk> and round-trips.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    return bpe


def _save_tokenizer(tokenizer_object, out: pathlib.Path, **special_tokens):
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object, model_max_length=_MAX_LEN, clean_up_tokenization_spaces=False,
        **special_tokens)
    tokenizer.save_pretrained(out)
    return tokenizer


def _save_random_model(model_class, config, out: pathlib.Path) -> None:
    import torch

    # fork_rng keeps the caller's global torch RNG untouched by our fixed seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        model = model_class(config)
    model.save_pretrained(out)
    # save_pretrained silently writes nothing on a torch.distributed rank other than 0.
    if not (out / "config.json").is_file() or not list(out.glob("*.safetensors")):
        raise RuntimeError("the built-in model's weights were not written (built on a distributed rank other than 0?)")


def _build_tiny_llama(out: pathlib.Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    bpe = _byte_level_bpe(["<unk>", "<s>", "</s>", "<pad>"])
    tokenizer = _save_tokenizer(bpe, out, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=_MAX_LEN,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        initializer_range=_INIT_STD)
    _save_random_model(LlamaForCausalLM, config, out)


def _build_tiny_t5(out: pathlib.Path) -> None:
    from tokenizers import processors
    from transformers import T5Config, T5ForConditionalGeneration

    # T5's layout: <pad> 0 (also the decoder start), </s> 1, <unk> 2.
    bpe = _byte_level_bpe(["<pad>", "</s>", "<unk>"])
    # Like T5's own tokenizer, every encoded sequence ends with </s>, so seq2seq labels do too.
    bpe.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", bpe.token_to_id("</s>"))])
    tokenizer = _save_tokenizer(bpe, out, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    # transformers 5 always ties T5's lm_head to the shared embedding (tie_word_embeddings=False
    # only turns off the d_model**-0.5 rescaling of the decoder output), so we keep the original
    # T5 layout: tied and rescaled.
    config = T5Config(
        vocab_size=len(tokenizer), d_model=64, d_ff=128, d_kv=16, num_layers=2, num_decoder_layers=2,
        num_heads=4, feed_forward_proj="relu", initializer_factor=_T5_INIT_FACTOR,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id)
    _save_random_model(T5ForConditionalGeneration, config, out)


def _build_tiny_bert(out: pathlib.Path) -> None:
    import string

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForQuestionAnswering

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # All of printable ASCII, as word starts and as "##" continuations, so plain English text
    # never needs [UNK] (WordPiece turns a whole word into [UNK] if one piece is missing).
    alphabet = sorted(set(string.printable.lower()) - set(string.whitespace))
    continuations = ["##" + char for char in alphabet]
    # The trainer would give "##" pieces their ids in hash-map order, which differs from one
    # process to the next and changes how merge ties break. Listed as special tokens they get
    # fixed ids up front; the final tokenizer below is built from the vocabulary alone.
    draft = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    draft.normalizer = normalizers.BertNormalizer(lowercase=True)
    draft.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=_WORDPIECE_VOCAB_SIZE, special_tokens=specials + continuations, initial_alphabet=alphabet,
        show_progress=False)
    draft.train_from_iterator(_corpus(), trainer=trainer)

    wordpiece = Tokenizer(models.WordPiece(draft.get_vocab(), unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece(prefix="##")
    wordpiece.add_special_tokens(specials)
    cls, sep = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    # token_type_ids 0 for [CLS] question [SEP], 1 for context [SEP].
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tokenizer = _save_tokenizer(
        wordpiece, out, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=_MAX_LEN, type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id, initializer_range=_BERT_INIT_STD)
    _save_random_model(BertForQuestionAnswering, config, out)


_BUILDERS = {
    "forge/tiny-llama": _build_tiny_llama,
    "forge/tiny-t5": _build_tiny_t5,
    "forge/tiny-bert": _build_tiny_bert,
}
assert _BUILDERS.keys() == BUILTIN_MODELS.keys() == BUILTIN_KINDS.keys()
