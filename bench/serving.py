"""Benchmark: the running service's serving figures, each against a baseline, in one run.

One real service (Ray on 2 CPUs, Serve's HTTP proxy on a free loopback port, a
temporary FORGE_HOME), started once and measured over HTTP:

1. GET /api/training_status, 20 concurrent clients, while a 2-worker job trains (1 worker with --quick)
   vs the same load on the idle service (p50, p99).
2. POST /api/playground/generate on a warm model vs transformers `generate` with
   the same base + adapter in a plain process (same prompt, max_new_tokens,
   greedy; the texts are checked equal); and the request overhead (HTTP wall time
   minus the replica's own generation time) vs GET /api/health.
3. The first request for a second adapter of a base the replica holds (adapter
   switch) vs the first request for an adapter of a base it does not hold (cold
   load); load time = wall time minus generation time. The two adapters are the
   two checkpoints the job of (1) keeps, registered as models once it is stopped.
4. POST /api/upload_dataset of 100 MB and 1 GB JSONL vs a plain process copying
   the same file to disk and validating it (validate_jsonl); the RSS of the
   ingress replica and Serve's proxy during the upload vs before it.

Ours and the baseline alternate, several repetitions each; figures are medians.
The full run trains on a moderately sized random Llama (hidden 512, 8 layers,
the built-in tokenizer); --quick uses forge/tiny-llama and small files.

With --url, --home and --dashboard it measures a service that is already running
instead of starting one. It must run on this machine with local storage: the plain
process loads the trained models from its FORGE_HOME, and the RSS figures find its
processes through its Ray dashboard. That service keeps its own settings (ours: 4 GB
uploads), so the uploads must fit its FORGE_MAX_UPLOAD_MB (1024 by default, too
small for the full run's 1 GB file: pass --upload-mb), and --quick uploads 0.5 and
1.5 MB there (the test session allows 2). The uploads stay in its datasets (the API
deletes none); the models this script trained or registered are deleted.

    .venv/bin/python bench/serving.py [--repeats 3] [--quick] [--write] [--upload-mb MB ...]
        [--url URL --home FORGE_HOME --dashboard URL]
"""

from __future__ import annotations

import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any, Callable

import requests
from _service import BenchService, service_arguments
from _table import REPO, bench_arguments, machine, write_table
from dataset_validation import generate as generate_jsonl

DATASET = REPO / "examples" / "datasets" / "text_generation.jsonl"
PROMPT = "Tell me a story about a river and a boat."
CLIENTS = 20
CHECKPOINT_STEPS = 20  # the long job's: two checkpoints within a minute of its start
# The full run's base: big enough that loading it is a measurable cost (about 26M parameters, 100 MB).
MODERATE = {"hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 8,
            "intermediate_size": 1376, "max_position_embeddings": 512}


# ------------------------------------------------------------------ the service

# The settings of the service this script starts: 4 GB uploads (1 GB files and more).
SETTINGS = {"FORGE_MAX_UPLOAD_MB": "4096", "FORGE_STOP_GRACE_S": "20"}


class Service(BenchService):
    """The service and this benchmark's requests."""

    def start(self, base: Path, dataset: str, **fields: Any) -> str:
        body = {"task": "text-generation", "model_name": str(base), "provider": "huggingface", "strategy": "sft",
                "dataset": dataset, "eval_split": 0, "learning_rate": 5e-3, "per_device_train_batch_size": 2,
                "gradient_accumulation_steps": 1, **fields}
        return self.start_job(body)

    def train(self, base: Path, dataset: str, **fields: Any) -> int:
        return self.wait(self.start(base, dataset, **fields), {"completed"})["model_id"]

    def generate(self, model_id: int, max_new_tokens: int) -> tuple[float, dict]:
        body = {"model_id": model_id, "prompt": PROMPT, "max_new_tokens": max_new_tokens, "temperature": 0}
        started = time.perf_counter()
        result = self.post("/api/playground/generate", json=body).json()
        return (time.perf_counter() - started) * 1000, result

    def actor_pid(self, class_name: str) -> int:
        from ray.util.state import list_actors

        actors = list_actors(address=self.dashboard, filters=[("class_name", "=", class_name), ("state", "=", "ALIVE")])
        assert len(actors) == 1, (class_name, actors)
        return actors[0].pid


# ------------------------------------------------------------ 1. status latency

def status_load(url: str, path: str, seconds: float) -> list[float]:
    """Latencies (ms) of GET `path` from CLIENTS concurrent clients, each sending its next request
    as soon as the last is answered, for `seconds`."""
    deadline = time.monotonic() + seconds

    def client() -> list[float]:
        session, latencies = requests.Session(), []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = session.get(url + path, timeout=60)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        return latencies

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [ms for part in pool.map(lambda _: client(), range(CLIENTS)) for ms in part]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------- 2. generation, plain process

def plain_generator(model_dir: Path, builtin_dir: Path) -> subprocess.Popen:
    """A plain process holding base + adapter with transformers and PEFT; one generation per stdin line."""
    return subprocess.Popen([sys.executable, __file__, "--child-generate", str(model_dir), str(builtin_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)


def plain_model(model_dir: str, builtin_dir: str) -> tuple[Any, Any, str]:
    """Base + adapter with transformers and PEFT alone, the model's tokenizer, and its task."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge.builtin import ensure_builtin, is_builtin

    meta = json.loads((Path(model_dir) / "forge.json").read_text())
    source = meta["base_model_source"]
    base_dir = ensure_builtin(source, Path(builtin_dir)) if is_builtin(source) else source
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), model_dir).eval()
    return model, AutoTokenizer.from_pretrained(model_dir), meta["task"]


def plain_runs(plain: subprocess.Popen, new_tokens: int, count: int) -> list[dict]:
    """`count` generations of `new_tokens` by a plain process: the JSON it printed for each."""
    results = []
    for _ in range(count):
        plain.stdin.write(f"{new_tokens}\n")
        plain.stdin.flush()
        results.append(json.loads(plain.stdout.readline()))
    return results


def end_plain(plain: subprocess.Popen, ours: list[dict], theirs: list[dict], who: str) -> None:
    """End the plain process; SystemExit unless `who` (ours) and it generated the same texts."""
    plain.stdin.close()
    plain.wait()
    if {o["text"] for o in ours} != {t["text"] for t in theirs}:
        raise SystemExit(f"{who} and plain transformers disagree: {ours[0]} vs {theirs[0]}")


def child_generate(model_dir: str, builtin_dir: str) -> None:
    import torch

    from forge.modeling.prompts import causal_prompt

    model, tokenizer, task = plain_model(model_dir, builtin_dir)
    text = causal_prompt(task, PROMPT, tokenizer)  # the prompt the playground builds for this task
    special = set(tokenizer.all_special_ids)
    print("ready", flush=True)
    for line in sys.stdin:
        started = time.perf_counter()
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=int(line), pad_token_id=tokenizer.pad_token_id,
                                    eos_token_id=tokenizer.eos_token_id)
        kept = [t for t in output[0, ids.shape[1]:].tolist() if t not in special]
        generated = tokenizer.decode(kept, skip_special_tokens=True)
        ms = (time.perf_counter() - started) * 1000
        print(json.dumps({"ms": ms, "tokens": len(kept), "text": generated}), flush=True)


# ------------------------------------------------------------------- 4. upload

def upload(url: str, path: Path, name: str) -> float:
    """POST the file as multipart/form-data, streamed from disk in 1 MB blocks; returns seconds."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/jsonl\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=1800)
    started = time.perf_counter()
    connection.putrequest("POST", "/api/upload_dataset")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head) + path.stat().st_size + len(tail)))
    connection.endheaders()
    connection.send(head)
    with path.open("rb") as source:
        while block := source.read(1024 * 1024):
            connection.send(block)
    connection.send(tail)
    response = connection.getresponse()
    body = response.read()
    seconds = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise SystemExit(f"upload answered {response.status}: {body[:1000]!r}")
    return seconds


def child_copy(path: str, folder: str) -> None:
    """The baseline: copy the file to disk in 1 MB blocks, then validate it, in a plain process."""
    import resource

    from forge.datasets import validate_jsonl

    target = Path(folder) / f"copy-{uuid.uuid4().hex}.jsonl"
    started = time.perf_counter()
    with open(path, "rb") as source, target.open("wb") as out:
        while block := source.read(1024 * 1024):
            out.write(block)
    report = validate_jsonl(target, None)
    seconds = time.perf_counter() - started
    target.unlink()
    assert report.valid, report.errors[:3]
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


class RssSampler:
    """Peak RSS (MB) of some processes, sampled every 20 ms in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = {name: self._rss(p) for name, p in self.processes.items()}
        self.before = dict(self.peak)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss(process) -> float:
        return process.memory_info().rss / 1024 / 1024

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, process in self.processes.items():
                self.peak[name] = max(self.peak[name], self._rss(process))

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ----------------------------------------------------------------------- driver

def build_base(folder: Path, builtin_dir: Path, quick: bool) -> Path:
    """forge/tiny-llama's folder (quick) or a random Llama of MODERATE size with the built-in tokenizer."""
    from forge.builtin import ensure_builtin

    tiny = ensure_builtin("forge/tiny-llama", builtin_dir)
    if quick:
        shutil.copytree(tiny, folder)
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(tiny)
    for key, value in MODERATE.items():
        setattr(config, key, value)
    config.head_dim = config.hidden_size // config.num_attention_heads
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(folder)
    return folder


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def row(figure: str, ours: float, baseline: float, goal: str, repeats: int, digits: int = 2) -> dict:
    result = {"figure": figure, "ours": round(ours, digits), "baseline": round(baseline, digits),
              "ratio": round(ours / baseline, 3), "goal": goal, "repeats": repeats, "machine": machine(),
              "date": date.today().isoformat()}
    print(json.dumps(result), flush=True)
    return result


def median(results: list[dict], key: str | Callable[[dict], float]) -> float:
    return statistics.median(r[key] if isinstance(key, str) else key(r) for r in results)


def main() -> None:
    parser = bench_arguments("tiny model, short windows, small files (smoke test)")
    parser.add_argument("--child-generate", nargs=2, metavar=("MODEL_DIR", "BUILTIN_DIR"))
    parser.add_argument("--child-copy", nargs=2, metavar=("PATH", "FOLDER"))
    parser.add_argument("--upload-mb", nargs="+", type=float, metavar="MB",
                        help="the upload figures' file sizes (default 100 1024; --quick: 2 8, 0.5 1.5 with --url)")
    service_arguments(parser)
    args = parser.parse_args()
    if args.child_generate:
        return child_generate(*args.child_generate)
    if args.child_copy:
        return child_copy(*args.child_copy)

    quick = args.quick
    repeats = 1 if quick else args.repeats
    window_s = 2.0 if quick else 8.0  # each status-latency measurement
    settle_s = 1.0 if quick else 8.0
    new_tokens = 16 if quick else 64
    generations = 3 if quick else 5  # per repetition and side
    # A running service's upload limit is its own: --quick keeps under 2 MB there (the test session's limit).
    sizes_mb = args.upload_mb or ([100, 1024] if not quick else [2, 8] if not args.url else [0.5, 1.5])
    load_workers = 1 if quick else 2  # the job training while status is measured: both cores, or (quick) one
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="forge-bench-serving-") as tmp:
        tmp_dir = Path(tmp)
        log(f"measuring the service at {args.url}" if args.url else "starting the service")
        service = Service.from_args(args, tmp_dir / "home", **SETTINGS)
        home = service.home
        try:
            builtin_dir = home / "builtin"
            dataset = service.post("/api/upload_dataset", files={"file": ("bench.jsonl", DATASET.read_bytes())}
                                   ).json()["filename"]
            # One base folder per repetition (same weights, different source): each repetition's first
            # request finds its base not loaded. base 0 is the warm-up's.
            bases = [build_base(tmp_dir / "bases" / f"base-{i}", builtin_dir, quick) for i in range(repeats + 1)]

            # 1 + 3. Per repetition: a long job (status under load while it trains, then idle), two
            # short jobs on the same base, then the cold load and the adapter switch.
            if not quick:  # replica warm-up: first-request costs (imports, allocator) out of the cold figure
                service.generate(service.train(bases[0], dataset, max_steps=1), 4)
            latency: dict[str, list[float]] = {"training": [], "idle": [], "health": []}
            loads: dict[str, list[float]] = {"switch": [], "cold": []}
            pairs = []
            for r in range(1, repeats + 1):
                # Its checkpoints (two kept) become the two models of base r that (3) loads.
                job = service.start(bases[r], dataset, max_steps=100_000, num_workers=load_workers,
                                    save_steps=CHECKPOINT_STEPS)
                service.wait(job, {"training"})
                log(f"repetition {r}: status load while training")
                latency["training"] += status_load(service.url, "/api/training_status", window_s)
                if service.status(job)["status"] != "training":
                    raise SystemExit(f"the job left training during the measurement: {service.status(job)}")
                service.wait_for_checkpoints(job, 2)
                service.post("/api/stop_training", params={"job_id": job})
                service.wait(job, {"stopped"})
                first, second = service.register_checkpoints(job, 2)  # a stopped job keeps its checkpoints
                # A job's end starts the next job's spare runner (a new process and its imports, a few
                # seconds of CPU): idle means after that.
                time.sleep(settle_s)
                log(f"repetition {r}: status and health load, idle")
                latency["idle"] += status_load(service.url, "/api/training_status", window_s)
                latency["health"] += status_load(service.url, "/api/health", window_s)
                log(f"repetition {r}: cold load, then adapter switch")
                for kind, model_id in (("cold", first), ("switch", second)):
                    wall_ms, result = service.generate(model_id, new_tokens)
                    loads[kind].append(wall_ms - result["generation_time_ms"])
                pairs.append((first, second))
            for q in (0.5, 0.99):
                rows.append(row(f"training_status p{int(q * 100)} ms, {CLIENTS} clients, training vs idle",
                                percentile(latency["training"], q), percentile(latency["idle"], q),
                                "p99 <= 50 ms during training", repeats))
            rows.append(row(f"idle p99 ms, {CLIENTS} clients, training_status vs health (Serve's floor)",
                            percentile(latency["idle"], 0.99), percentile(latency["health"], 0.99),
                            "p99 <= 50 ms", repeats))
            # Little's law: with CLIENTS always waiting, mean latency = CLIENTS / requests per second.
            rows.append(row(f"requests/s answered, {CLIENTS} clients, training_status while training vs "
                            "health idle", len(latency["training"]) / (window_s * repeats),
                            len(latency["health"]) / (window_s * repeats),
                            f"> {CLIENTS / 0.05:.0f}/s for a 50 ms mean", repeats))
            rows.append(row("first request for a 2nd adapter of a loaded base vs a cold base+adapter, load ms",
                            statistics.median(loads["switch"]), statistics.median(loads["cold"]),
                            "ratio <= 0.25", repeats))

            log("warm generation, alternating with the plain process")
            # 2. Warm generation vs transformers in a plain process, alternating.
            model_id = pairs[0][0]
            plain = plain_generator(home / "models" / str(model_id), builtin_dir)
            assert plain.stdout.readline().strip() == "ready"
            ours: list[dict] = []
            theirs: list[dict] = []
            health: list[float] = []
            service.generate(model_id, new_tokens)  # warm
            for _ in range(repeats):
                for _ in range(generations):
                    wall_ms, result = service.generate(model_id, new_tokens)
                    ours.append({"ms": wall_ms, "tokens": result["tokens_generated"],
                                 "overhead": wall_ms - result["generation_time_ms"], "text": result["generated_text"]})
                    started = time.perf_counter()
                    service.get("/api/health")
                    health.append((time.perf_counter() - started) * 1000)
                theirs += plain_runs(plain, new_tokens, generations)
            end_plain(plain, ours, theirs, "the playground")
            rows.append(row(f"generate tokens/s, {new_tokens} new tokens, HTTP vs plain transformers",
                            median(ours, lambda o: o["tokens"] / o["ms"] * 1000),
                            median(theirs, lambda t: t["tokens"] / t["ms"] * 1000), "ratio >= 0.9", repeats))
            rows.append(row("generate time-to-result ms, HTTP vs plain transformers", median(ours, "ms"),
                            median(theirs, "ms"), "ratio <= 1.11 (tokens/s >= 0.9)", repeats))
            rows.append(row("generate request overhead ms (HTTP wall - generation) vs GET /api/health ms",
                            median(ours, "overhead"), statistics.median(health), "<= 20 ms", repeats))

            # 4. Upload through the API vs copy + validate in a plain process, alternating.
            pids = {"ingress": service.actor_pid("ServeReplica:modelforge:ApiIngress"),
                    "proxy": service.actor_pid("ProxyActor")}
            for megabytes in sizes_mb:
                path = tmp_dir / f"upload-{megabytes:g}mb.jsonl"
                generate_jsonl(path, megabytes)
                log(f"uploads of {megabytes:g} MB, alternating with the plain copy")
                size_mb = path.stat().st_size / 1024 / 1024
                sent: list[dict] = []
                copied: list[dict] = []
                for attempt in range(repeats):
                    with RssSampler(pids) as rss:
                        seconds = upload(service.url, path, f"upload-{megabytes:g}-{attempt}.jsonl")
                    sent.append({"seconds": seconds, "peak": sum(rss.peak.values()),
                                 "before": sum(rss.before.values())})
                    if service.owned:  # a running service's datasets are its registry's, files included
                        for stored in (home / "datasets").glob(f"upload-{megabytes:g}-*"):
                            stored.unlink()  # keep the temp disk small; the registry entry is harmless here
                    done = subprocess.run([sys.executable, __file__, "--child-copy", str(path), str(tmp_dir)],
                                          capture_output=True, text=True, cwd=REPO, check=True)
                    copied.append(json.loads(done.stdout.strip().splitlines()[-1]))
                path.unlink()
                rows.append(row(f"upload MB/s, {megabytes:g} MB, HTTP vs plain copy + validate_jsonl",
                                size_mb / median(sent, "seconds"), size_mb / median(copied, "seconds"),
                                "-", repeats))
                rows.append(row(f"upload RSS MB of ingress + proxy, {megabytes:g} MB, peak during vs before",
                                median(sent, "peak"), median(sent, "before"),
                                "same at every size (memory flat in file size)", repeats))
        finally:
            service.close()
    if args.write:
        write_table("serving.py", "ours", "baseline", rows)


if __name__ == "__main__":
    main()
