"""Benchmark: the playground's streaming and batching, each against a baseline, in one run.

One real service (Ray on 2 CPUs, Serve's HTTP proxy on a free loopback port, a
temporary FORGE_HOME), and four LoRA models of one base: four checkpoints of one job,
registered as models (a job costs tens of seconds; its checkpoints are models for free).

1. Streaming: POST /v1/chat/completions with stream=True on a warm model, time to the
   first text chunk and tokens/s (completion tokens over the whole request), vs
   transformers `generate` with a TextIteratorStreamer in a plain process holding the
   same base + adapter (same prompt, greedy, same token budget; texts checked equal).
2. Batching: 16 POST /api/playground/generate (4 prompts x the 4 models, greedy) sent at
   once vs the same 16 sent one at a time: generated tokens per second of wall time
   (answers checked equal: a request answers the same alone and in a batch).

Ours and the baseline alternate, several repetitions each; figures are medians. The full
run uses the random Llama of moderate size that bench/serving.py uses (hidden 512, 8
layers, about 26M parameters); --quick uses forge/tiny-llama and fewer tokens.

With --url and --home it measures a service that is already running instead of starting
one (on this machine, local storage: the plain process loads the models from its
FORGE_HOME). Its job runs alone there if that service allows one job at a time, which
changes no figure; the models this script registered are deleted at the end.

    .venv/bin/python bench/inference.py [--repeats 3] [--quick] [--write] [--url URL --home FORGE_HOME]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from _service import BenchService, service_arguments
from _table import REPO, bench_arguments, write_table
from serving import DATASET, build_base, end_plain, log, median, plain_model, plain_runs, row

PROMPTS = ["Tell me a story about a river and a boat.", "What is 3 plus 4?", "Name three colours.",
           "Why is the sky blue?"]
MODELS = 4
CONCURRENT = 16


class Service(BenchService):
    """The service, the models this script registered, and this benchmark's requests."""

    def four_models(self, base: str, dataset: str) -> list[dict]:
        """Four checkpoints of one job on `base`, registered as models (the job is stopped after)."""
        body = {"task": "text-generation", "model_name": base, "provider": "huggingface", "strategy": "sft",
                "dataset": dataset, "eval_split": 0, "learning_rate": 2e-2, "max_steps": 100_000, "save_steps": 3,
                "save_total_limit": MODELS + 2, "per_device_train_batch_size": 2}
        job = self.start_job(body)
        try:
            return [self.client.model(model_id) for model_id in self.register_checkpoints(job, MODELS)]
        finally:
            self.post("/api/stop_training", params={"job_id": job})
            self.wait(job, {"stopped", "completed", "failed"})

    def generate(self, model_id: int, prompt: str, new_tokens: int) -> dict:
        body = {"model_id": model_id, "prompt": prompt, "max_new_tokens": new_tokens, "temperature": 0}
        return requests.post(f"{self.url}/api/playground/generate", json=body, timeout=600).json()

    def stream_chat(self, name: str, prompt: str, new_tokens: int) -> dict:
        """One streamed chat completion: time to the first text chunk, the whole time, tokens and text."""
        body = {"model": name, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
                "max_tokens": new_tokens, "stream": True, "stream_options": {"include_usage": True}}
        started = time.perf_counter()
        first, pieces, tokens = None, [], 0
        with requests.post(f"{self.url}/v1/chat/completions", json=body, stream=True, timeout=600) as response:
            if response.status_code != 200:
                raise SystemExit(f"chat completions answered {response.status_code}: {response.text[:1000]}")
            for line in response.iter_lines():
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                chunk = json.loads(line[len(b"data: "):])
                text = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
                if text:
                    first = first or time.perf_counter()
                    pieces.append(text)
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
        ended = time.perf_counter()
        return {"ttft_ms": ((first or ended) - started) * 1000, "s": ended - started, "tokens": tokens,
                "text": "".join(pieces)}


# ------------------------------------------------------------ the plain process

def plain_streamer(model_dir: Path, builtin_dir: Path) -> subprocess.Popen:
    """A plain process holding base + adapter; one streamed generation per stdin line (the token budget)."""
    return subprocess.Popen([sys.executable, __file__, "--child-stream", str(model_dir), str(builtin_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)


def child_stream(model_dir: str, builtin_dir: str) -> None:
    import torch
    from transformers import TextIteratorStreamer

    from forge.modeling.prompts import chat_prompt

    model, tokenizer, task = plain_model(model_dir, builtin_dir)
    # The prompt the service builds for one user message.
    text = chat_prompt(task, [{"role": "user", "content": PROMPTS[0]}], tokenizer)
    print("ready", flush=True)
    for line in sys.stdin:
        started = time.perf_counter()
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        outputs: list[Any] = []

        def run() -> None:
            with torch.inference_mode():
                outputs.append(model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                              max_new_tokens=int(line), pad_token_id=tokenizer.pad_token_id,
                                              eos_token_id=tokenizer.eos_token_id, streamer=streamer))

        worker = threading.Thread(target=run)
        worker.start()
        first, pieces = None, []
        for piece in streamer:
            if piece:
                first = first or time.perf_counter()
                pieces.append(piece)
        worker.join()
        ended = time.perf_counter()
        tokens = outputs[0].shape[1] - ids.shape[1]
        print(json.dumps({"ttft_ms": ((first or ended) - started) * 1000, "s": ended - started, "tokens": tokens,
                          "text": "".join(pieces)}), flush=True)


# ----------------------------------------------------------------------- driver

def main() -> None:
    parser = bench_arguments("tiny model, few tokens (smoke test)")
    parser.add_argument("--child-stream", nargs=2, metavar=("MODEL_DIR", "BUILTIN_DIR"))
    service_arguments(parser)
    args = parser.parse_args()
    if args.child_stream:
        return child_stream(*args.child_stream)

    quick = args.quick
    repeats = 1 if quick else args.repeats
    new_tokens = 16 if quick else 64
    streams = 2 if quick else 5  # per repetition and side
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="forge-bench-inference-") as tmp:
        tmp_dir = Path(tmp)
        log(f"measuring the service at {args.url}" if args.url else "starting the service")
        service = Service.from_args(args, tmp_dir / "home", dashboard=False)
        home = service.home
        try:
            builtin_dir = home / "builtin"
            # A name of its own: a running service's users may have uploaded the sample as it is named.
            dataset = service.upload(DATASET, name="bench-inference.jsonl")
            base = "forge/tiny-llama" if quick else str(build_base(tmp_dir / "base", builtin_dir, quick))
            log(f"training one job on {'forge/tiny-llama' if quick else 'a moderate Llama'}: {MODELS} checkpoints")
            models = service.four_models(base, dataset)
            for model in models:  # each loaded on the replica before anything is timed
                service.generate(model["id"], PROMPTS[0], 2)

            log("streaming, alternating with the plain process")
            plain = plain_streamer(home / "models" / str(models[0]["id"]), builtin_dir)
            assert plain.stdout.readline().strip() == "ready"
            ours: list[dict] = []
            theirs: list[dict] = []
            for _ in range(repeats):
                ours += [service.stream_chat(models[0]["name"], PROMPTS[0], new_tokens) for _ in range(streams)]
                theirs += plain_runs(plain, new_tokens, streams)
            end_plain(plain, ours, theirs, "the stream")
            rows.append(row(f"streamed chat completion, time to first token ms, {new_tokens} new tokens, "
                            "HTTP vs plain transformers + TextIteratorStreamer",
                            median(ours, "ttft_ms"), median(theirs, "ttft_ms"), "ratio <= 2 (Serve's hops)",
                            repeats))
            rows.append(row(f"streamed chat completion tokens/s, {new_tokens} new tokens, HTTP vs plain transformers"
                            " + TextIteratorStreamer", median(ours, lambda o: o["tokens"] / o["s"]),
                            median(theirs, lambda t: t["tokens"] / t["s"]), "ratio >= 0.8", repeats))

            log(f"batching: {CONCURRENT} requests over {MODELS} models at once, alternating with one at a time")
            asked = [(models[i % MODELS]["id"], PROMPTS[i // MODELS % len(PROMPTS)]) for i in range(CONCURRENT)]
            together: list[float] = []
            alone: list[float] = []
            for _ in range(repeats):
                for side in ("together", "alone"):
                    started = time.perf_counter()
                    if side == "together":
                        with ThreadPoolExecutor(CONCURRENT) as pool:
                            answers = list(pool.map(lambda a: service.generate(a[0], a[1], new_tokens), asked))
                    else:
                        answers = [service.generate(model_id, prompt, new_tokens) for model_id, prompt in asked]
                    seconds = time.perf_counter() - started
                    (together if side == "together" else alone).append(
                        sum(a["tokens_generated"] for a in answers) / seconds)
                    texts = [a["generated_text"] for a in answers]
                    if side == "together":
                        batched_texts = texts
                    elif texts != batched_texts:
                        raise SystemExit("a request answered otherwise in a batch than alone")
            rows.append(row(f"generated tokens/s, {CONCURRENT} requests over {MODELS} adapters of one base, "
                            f"{new_tokens} new tokens each, sent at once vs one at a time",
                            statistics.median(together), statistics.median(alone),
                            "ratio >= 2", repeats))
        finally:
            service.close()
    if args.write:
        write_table("inference.py", "ours", "baseline", rows)


if __name__ == "__main__":
    main()
