"""Several requests for the adapters of one base, generated in one batch: each gets what it gets alone.

Real transformers and PEFT on the built-in tiny Llama; the adapters are real LoRA
folders with random non-zero weights, so each answers differently. "Alone" is plain
transformers `generate` on a base of its own with that one adapter, one unpadded prompt.
No Ray: the batch thread is the one a Playground replica runs per base.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from forge.builtin import ensure_builtin
from forge.modeling.batch_generation import BASE_ADAPTER, Continuation, Row, generate_together
from forge.modeling.generation import generate_texts
from forge.playground.adapter_cache import AdapterCache
from forge.playground.responder import load_base_model, load_trained_model, prompt_text
from forge.schemas import GenerateRequest

PROMPTS = ["What is 3 plus 4?", "Hi", "Tell me a story about a river and a boat, with a long prompt.", "Sum?"]
KEYS = ["1", "2", "3", "4"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, builtin_dir: Path, make_adapter) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batched")
    tiny = ensure_builtin("forge/tiny-llama", builtin_dir)
    return {key: make_adapter(root / key, tiny, "forge/tiny-llama", 10 + int(key),
                              ["q_proj", "v_proj"] if int(key) % 2 else ["q_proj", "k_proj", "o_proj"])
            for key in KEYS}


@pytest.fixture(scope="module")
def alone_models(folders: dict[str, Path], builtin_dir: Path) -> dict[str, object]:
    """Each adapter on a base of its own, and the bare base (key BASE_ADAPTER)."""
    models = {key: load_trained_model(folder, builtin_dir) for key, folder in folders.items()}
    models[BASE_ADAPTER] = load_base_model("forge/tiny-llama", builtin_dir, "text-generation")
    return models


def alone(loaded, text: str, max_new_tokens: int) -> str:
    prompt = prompt_text(loaded.kind, loaded.task, text, loaded.tokenizer)
    return generate_texts(loaded.model, loaded.tokenizer, [prompt], max_new_tokens=max_new_tokens)[0].text


@pytest.fixture(scope="module")
def shared(folders: dict[str, Path], builtin_dir: Path):
    """One base carrying the four adapters, named by their keys: what a replica holds."""
    from peft import PeftModel

    base = load_base_model("forge/tiny-llama", builtin_dir, "text-generation")
    model = PeftModel.from_pretrained(base.model, str(folders["1"]), adapter_name="1").eval()
    for key in KEYS[1:]:
        model.load_adapter(str(folders[key]), adapter_name=key)
    return model, base.tokenizer


def row(shared, adapter: str, text: str, max_new_tokens: int, **settings) -> Row:
    model, tokenizer = shared
    prompt = prompt_text("causal-lm", "text-generation", text, tokenizer)
    return Row(Continuation(prompt, max_new_tokens, **settings), tokenizer, adapter)


def test_a_batch_over_four_adapters_and_the_base_answers_as_each_alone(shared, alone_models):
    # Two rows per adapter with prompts of different lengths (left padding), different token budgets.
    asked = [(adapter, PROMPTS[i % 4], 6 + 3 * i) for i, adapter in enumerate(KEYS * 2 + [BASE_ADAPTER])]
    outcomes = generate_together(shared[0], [row(shared, *ask) for ask in asked])
    expected = [alone(alone_models[adapter], text, budget) for adapter, text, budget in asked]
    assert [o.text for o in outcomes] == expected
    assert len(set(expected[:4])) == 4, "the test needs adapters that answer differently"
    for (_, _, budget), outcome in zip(asked, outcomes):
        assert outcome.completion_tokens <= budget
        assert outcome.finish_reason == ("length" if outcome.completion_tokens == budget else "stop")


def test_each_rows_streamed_pieces_join_to_its_text(shared, alone_models):
    pieces: dict[str, list[str]] = {key: [] for key in KEYS}
    rows = [row(shared, key, PROMPTS[i], 24, emit=pieces[key].append) for i, key in enumerate(KEYS)]
    outcomes = generate_together(shared[0], rows)
    for i, (key, outcome) in enumerate(zip(KEYS, outcomes)):
        assert len(pieces[key]) > 1, "the text should arrive in pieces as it is generated"
        assert "".join(pieces[key]) == outcome.text == alone(alone_models[key], PROMPTS[i], 24)


def test_a_row_that_stops_early_or_whose_client_leaves_does_not_disturb_the_others(shared, alone_models):
    whole = alone(alone_models["2"], PROMPTS[1], 30)
    stop = whole[len(whole) // 2:len(whole) // 2 + 3]
    assert stop.strip(), whole
    left = threading.Event()
    gone: list[str] = []

    def leave_after_first_piece(text: str) -> None:
        gone.append(text)
        left.set()

    rows = [row(shared, "1", PROMPTS[0], 30), row(shared, "2", PROMPTS[1], 30, stop=[stop]),
            row(shared, "3", PROMPTS[2], 30, emit=leave_after_first_piece, halt=left), row(shared, "4", PROMPTS[3], 30)]
    first, stopped, halted, last = generate_together(shared[0], rows)
    assert stopped.text == whole[:whole.index(stop)] and stopped.finish_reason == "stop"
    assert stopped.completion_tokens < 30
    assert len(gone) == 1 and halted.completion_tokens < 30
    assert first.text == alone(alone_models["1"], PROMPTS[0], 30)
    assert last.text == alone(alone_models["4"], PROMPTS[3], 30)


def test_concurrent_requests_through_the_cache_run_as_batches_and_answer_as_alone(folders, alone_models,
                                                                                   builtin_dir: Path):
    # A generous gathering window: the eight requests, started together, surely meet in a batch.
    cache = AdapterCache(builtin_dir, max_adapters=4, max_bases=1, batch_wait_s=0.5)
    for key in KEYS:
        cache.load(key, lambda key=key: folders[key])
    asked = [(KEYS[i % 4], PROMPTS[i // 2 % 4], 8 + i) for i in range(8)]
    answers: list[str | None] = [None] * len(asked)
    start = threading.Barrier(len(asked))

    def client(i: int) -> None:
        key, text, budget = asked[i]
        request = GenerateRequest(model_id=int(key), prompt=text, max_new_tokens=budget, temperature=0, top_p=1.0)
        start.wait()
        answers[i] = cache.respond(key, request, lambda: folders[key])["generated_text"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(asked))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [alone(alone_models[key], text, budget) for key, text, budget in asked]
    (sizes,) = cache.batch_sizes().values()
    assert sum(size * count for size, count in sizes.items()) == len(asked)
    assert max(sizes) > 1, sizes


def test_requests_that_sample_or_carry_a_seed_are_not_batched_with_greedy_ones():
    greedy, sampled = Continuation("a", 5), Continuation("a", 5, temperature=0.8, top_p=0.9)
    assert greedy.decoding() == Continuation("b", 9, stop=["x"]).decoding()
    assert sampled.decoding() == Continuation("b", 9, temperature=0.8, top_p=0.9).decoding() != greedy.decoding()
    seeded = Continuation("a", 5, temperature=0.8, top_p=0.9, seed=3)
    assert seeded.decoding() != Continuation("a", 5, temperature=0.8, top_p=0.9, seed=3).decoding()


def test_the_base_answers_beside_its_adapters_in_one_batch_when_asked_for_it(folders, alone_models,
                                                                              builtin_dir: Path):
    from forge.playground.responder import respond

    cache = AdapterCache(builtin_dir, max_adapters=4, max_bases=1, batch_wait_s=0.5)
    for key in KEYS[:2]:
        cache.load(key, lambda key=key: folders[key])
    request = GenerateRequest(model_id=1, prompt=PROMPTS[0], max_new_tokens=10, temperature=0, top_p=1.0)
    asked = [("1", False), ("1", True), ("2", False), ("2", True)]
    answers: list[str | None] = [None] * len(asked)

    def client(i: int) -> None:
        key, use_base = asked[i]
        answers[i] = cache.answer(key, lambda: folders[key], lambda loaded: respond(loaded, request),
                                  use_base=use_base)["generated_text"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(asked))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    base = alone(alone_models[BASE_ADAPTER], PROMPTS[0], 10)
    assert answers == [alone(alone_models["1"], PROMPTS[0], 10), base, alone(alone_models["2"], PROMPTS[0], 10), base]
    assert base not in (answers[0], answers[2])
    (sizes,) = cache.batch_sizes().values()
    assert max(sizes) > 1, sizes


def test_a_seq2seq_batch_answers_as_each_prompt_alone(builtin_dir: Path):
    t5 = load_base_model("forge/tiny-t5", builtin_dir, "summarization", "seq2seq-lm")
    texts = ["The river flows past the old mill and the boat drifts slowly along.", "Short one.",
             "A medium length text about colours and the sky."]
    prompts = [prompt_text(t5.kind, t5.task, text, t5.tokenizer) for text in texts]
    together = generate_together(t5.model, [Row(Continuation(p, 12), t5.tokenizer) for p in prompts], seq2seq=True)
    assert [o.text for o in together] == [
        generate_texts(t5.model, t5.tokenizer, [p], max_new_tokens=12, seq2seq=True)[0].text for p in prompts]
