"""The offline built-in models: real transformers models, deterministic, built once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForQuestionAnswering, AutoModelForSeq2SeqLM, AutoTokenizer

from forge.builtin import BUILTIN_KINDS, BUILTIN_MODELS, ensure_builtin, is_builtin

NAME = "forge/tiny-llama"
NAMES = ["forge/tiny-llama", "forge/tiny-t5", "forge/tiny-bert"]
AUTO_CLASSES = {
    "causal-lm": AutoModelForCausalLM,
    "seq2seq-lm": AutoModelForSeq2SeqLM,
    "question-answering": AutoModelForQuestionAnswering,
}
EXPECTED = {
    "forge/tiny-llama": ("causal-lm", "LlamaForCausalLM"),
    "forge/tiny-t5": ("seq2seq-lm", "T5ForConditionalGeneration"),
    "forge/tiny-bert": ("question-answering", "BertForQuestionAnswering"),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def built(cache):
    return ensure_builtin(NAME, cache)


@pytest.fixture(scope="module")
def loaded(cache):
    """name -> (directory, tokenizer, model), each built and loaded once per module."""
    done = {}

    def load(name):
        if name not in done:
            directory = ensure_builtin(name, cache)
            model = AUTO_CLASSES[BUILTIN_KINDS[name]].from_pretrained(directory).eval()
            done[name] = directory, AutoTokenizer.from_pretrained(directory), model
        return done[name]

    return load


def test_is_builtin():
    for name in NAMES:
        assert is_builtin(name)
        assert name in BUILTIN_MODELS and BUILTIN_MODELS[name]
    assert set(BUILTIN_MODELS) == set(NAMES) == set(BUILTIN_KINDS)
    assert {name: BUILTIN_KINDS[name] for name in NAMES} == {name: kind for name, (kind, _) in EXPECTED.items()}
    for other in ["meta-llama/Llama-3.2-1B", "tiny-llama", "forge/tiny-llama2", "forge/tiny-T5", "t5-small", ""]:
        assert not is_builtin(other)


def test_module_import_stays_light():
    code = "import sys, forge.builtin; print(sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_unknown_name_raises_key_error(tmp_path):
    with pytest.raises(KeyError):
        ensure_builtin("forge/does-not-exist", tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", NAMES)
def test_build_is_deterministic(name, cache, tmp_path):
    first, other = ensure_builtin(name, cache), ensure_builtin(name, tmp_path)
    assert other != first
    assert (other / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()
    assert (other / "config.json").read_bytes() == (first / "config.json").read_bytes()
    a, b = load_file(first / "model.safetensors"), load_file(other / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_build_is_deterministic_across_processes(cache, tmp_path):
    # Rust hash maps are seeded per process: a trainer that iterates one shows up here.
    code = ("import pathlib, sys; from forge.builtin import ensure_builtin; "
            "[ensure_builtin(n, pathlib.Path(sys.argv[1])) for n in sys.argv[2:]]")
    subprocess.run([sys.executable, "-c", code, str(tmp_path), *NAMES], check=True, capture_output=True)
    for name in NAMES:
        ours, theirs = ensure_builtin(name, cache), ensure_builtin(name, tmp_path)
        for file in ("tokenizer.json", "tokenizer_config.json", "config.json", "model.safetensors"):
            assert (ours / file).read_bytes() == (theirs / file).read_bytes(), (name, file)


@pytest.mark.parametrize("name", NAMES)
def test_loads_with_its_auto_class(name, loaded):
    directory, tokenizer, model = loaded(name)
    assert type(model).__name__ == EXPECTED[name][1]
    assert 10_000 < sum(p.numel() for p in model.parameters()) < 2_000_000
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.model_max_length == 512
    assert tokenizer.chat_template is None
    assert model.config.pad_token_id == tokenizer.pad_token_id
    marker = json.loads((directory / "forge_builtin.json").read_text())
    assert (marker["name"], marker["kind"]) == (name, BUILTIN_KINDS[name])


def test_llama_loads_and_runs(loaded):
    _, tokenizer, model = loaded(NAME)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert 512 <= len(tokenizer) <= 1024

    for text in ["The curious robot repairs the engine near the harbour.", "Unseen wörds, 42 digits & tabs\tok!"]:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text

    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    assert model.config.bos_token_id == tokenizer.bos_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id

    batch = tokenizer(["A dog reads a book.", "The old farmer paints the tall tree at night."],
                      padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_t5_tokenizer_and_forward(loaded):
    _, tokenizer, model = loaded("forge/tiny-t5")
    # T5's conventions: <pad> 0 is also the decoder start, </s> 1, <unk> 2.
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token) == ("<pad>", "</s>", "<unk>")
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert (model.config.pad_token_id, model.config.eos_token_id, model.config.decoder_start_token_id) == (0, 1, 0)
    assert model.config.is_encoder_decoder

    for text in ["summarize: Alice lives in Paris and found a lantern at the market.",
                 "Unseen wörds, 42 digits & tabs\tok!"]:
        ids = tokenizer(text)["input_ids"]
        assert ids[-1] == tokenizer.eos_token_id and ids.count(tokenizer.eos_token_id) == 1
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text

    batch = tokenizer(["summarize: The cat sees the ball near the park.", "A dog reads a book."],
                      text_target=["The cat sees the ball.", "Dog reads."], padding=True, return_tensors="pt")
    labels = batch["labels"]
    assert (labels[:, -1] == tokenizer.eos_token_id).any() and (labels == tokenizer.eos_token_id).sum() == 2
    batch["labels"] = labels.masked_fill(labels == tokenizer.pad_token_id, -100)
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape == (2, labels.shape[1], model.config.vocab_size)
    assert torch.isfinite(out.loss) and 0 < out.loss.item() < 20
    generated = model.generate(**{k: batch[k] for k in ("input_ids", "attention_mask")}, max_new_tokens=4, do_sample=False)
    assert generated.shape[0] == 2 and (generated[:, 0] == model.config.decoder_start_token_id).all()


def test_bert_tokenizer_and_forward(loaded):
    _, tokenizer, model = loaded("forge/tiny-bert")
    assert 1000 <= len(tokenizer) <= 2048
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert (tokenizer.pad_token_id, tokenizer.cls_token, tokenizer.sep_token) == (0, "[CLS]", "[SEP]")
    assert model.config.type_vocab_size == 2

    text = "Alice lives in Paris; the curious Robot repairs 42 engines & tabs\tnear the harbour!"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in ids
    # Uncased, and the WordPiece decoder puts spaces around punctuation: compare without spaces.
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert "".join(decoded.split()) == "".join(text.lower().split())

    # Words from the training corpus are whole tokens; others split into "##" pieces.
    assert tokenizer.tokenize("Who repairs the engine in Paris?") == ["who", "repairs", "the", "engine", "in", "paris", "?"]
    pieces = tokenizer.tokenize("Quizzically")
    assert len(pieces) > 1 and all(piece.startswith("##") for piece in pieces[1:])
    assert pieces[0] + "".join(piece[2:] for piece in pieces[1:]) == "quizzically"

    question, context = "Who lives in Oslo?", "Zara, a quiet pilot, lives in Oslo."
    pair = tokenizer(question, context)
    q_ids, c_ids = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in (question, context))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert pair["input_ids"] == [cls, *q_ids, sep, *c_ids, sep]
    assert pair["token_type_ids"] == [0] * (len(q_ids) + 2) + [1] * (len(c_ids) + 1)

    batch = tokenizer(["Who?", "Where does Alice live?"], ["Bob.", "Alice lives in Paris."], padding=True,
                      return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    assert out.start_logits.shape == out.end_logits.shape == batch["input_ids"].shape
    assert torch.isfinite(out.start_logits).all() and torch.isfinite(out.end_logits).all()


def test_bert_long_context_windows_with_offsets(loaded):
    _, tokenizer, model = loaded("forge/tiny-bert")
    filler = " ".join(f"The {w} robot repairs the engine near the harbour." for w in ["busy", "old", "tired"] * 6)
    contexts = [f"{filler} In 1920, the bridge in Paris was built by Alice. {filler}", "Bob lives in Oslo."]
    questions = ["Who built the bridge in Paris?", "Where does Bob live?"]
    answers = ["Alice", "Oslo"]
    enc = tokenizer(questions, contexts, truncation="only_second", max_length=64, stride=16,
                    return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")

    sample_of = enc["overflow_to_sample_mapping"]
    assert sample_of.count(0) >= 3 and sample_of.count(1) == 1 and sorted(sample_of) == sample_of
    assert all(len(ids) == 64 for ids in enc["input_ids"])
    found = set()
    context_spans = {0: [], 1: []}
    for window, sample in enumerate(sample_of):
        context, offsets, seq_ids = contexts[sample], enc["offset_mapping"][window], enc.sequence_ids(window)
        ids = enc["input_ids"][window]
        assert enc["token_type_ids"][window][seq_ids.index(1)] == 1
        span = [i for i, s in enumerate(seq_ids) if s == 1]
        assert span and span == list(range(span[0], span[-1] + 1))
        for i in span:
            start, end = offsets[i]
            assert 0 <= start < end <= len(context)
            assert context[start:end].lower() == tokenizer.convert_ids_to_tokens(ids[i]).removeprefix("##")
        context_spans[sample].append((offsets[span[0]][0], offsets[span[-1]][1]))
        answer_start = context.index(answers[sample])
        for i in span:  # the answer is one token; find it in whatever windows hold it
            if offsets[i] == (answer_start, answer_start + len(answers[sample])):
                found.add(sample)
    assert found == {0, 1}
    for sample, spans in context_spans.items():
        # The windows cover the whole context, in order, each overlapping the one before.
        assert spans[0][0] == 0 and spans[-1][1] == len(contexts[sample])
        for (a_start, a_end), (b_start, b_end) in zip(spans, spans[1:]):
            assert a_start < b_start < a_end < b_end

    inputs = {k: torch.tensor(enc[k]) for k in ("input_ids", "token_type_ids", "attention_mask")}
    with torch.no_grad():
        out = model(**inputs)
    assert out.start_logits.shape == out.end_logits.shape == (len(sample_of), 64)


@pytest.mark.parametrize("name", NAMES)
def test_second_call_does_not_rebuild(name, cache):
    target = ensure_builtin(name, cache)
    marker = target / "forge_builtin.json"
    assert json.loads(marker.read_text())["name"] == name
    before = marker.stat().st_mtime_ns
    assert ensure_builtin(name, cache) == target
    assert marker.stat().st_mtime_ns == before


def test_directory_without_marker_is_rebuilt(tmp_path):
    target = ensure_builtin(NAME, tmp_path)
    (target / "forge_builtin.json").unlink()
    (target / "model.safetensors").write_bytes(b"half-written")
    assert ensure_builtin(NAME, tmp_path) == target
    assert (target / "forge_builtin.json").exists()
    assert AutoModelForCausalLM.from_pretrained(target).config.model_type == "llama"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name, f"{target.name}.lock"]


def test_models_share_the_cache_without_clashing(cache):
    dirs = {name: ensure_builtin(name, cache) for name in NAMES}
    assert len(set(dirs.values())) == len(NAMES)
    assert all(d.parent == cache for d in dirs.values())


_BUILD_ON_RANK_ONE = """
import sys, torch.distributed as dist
from forge.builtin import ensure_builtin
dist.init_process_group("gloo", init_method=sys.argv[1], rank=int(sys.argv[2]), world_size=2)
if dist.get_rank() == 1:
    print("built:", ensure_builtin("forge/tiny-llama", sys.argv[3]))
dist.barrier()
"""


def test_a_build_on_a_distributed_rank_other_than_0_writes_the_same_complete_model(tmp_path, cache):
    # transformers' save_pretrained writes no weights on rank != 0, which once left a cache
    # with a tokenizer and a marker but no weights. Rank 1 of a job on a node whose
    # FORGE_HOME has no copy yet builds in a fresh process instead.
    init = f"file://{tmp_path / 'rendezvous'}"
    ranks = [subprocess.Popen([sys.executable, "-c", _BUILD_ON_RANK_ONE, init, str(rank), str(tmp_path / "rank1")],
                              stdout=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = [rank.communicate(timeout=300)[0] for rank in ranks]
    assert all(rank.returncode == 0 for rank in ranks)
    built = tmp_path / "rank1" / "forge--tiny-llama"
    assert f"built: {built}" in outputs[1]
    plain = ensure_builtin("forge/tiny-llama", cache)
    ours, reference = load_file(built / "model.safetensors"), load_file(plain / "model.safetensors")
    assert ours.keys() == reference.keys()
    assert all(torch.equal(ours[k], reference[k]) for k in reference)
