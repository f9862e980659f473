"""Benchmark: the same LoRA SFT job under provider huggingface and provider unsloth, in one run.

Same built-in model, data, hyperparameters and thread count; each provider runs in
its own environment (the core venv, the unsloth venv) as a fresh process, the two
alternating for several repetitions. Prints one JSON line per figure and the
unsloth/huggingface ratios; `--write` updates docs/benchmarks.md.

    .venv/bin/python bench/providers.py [--repeats 3] [--quick] [--write]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from datetime import date
from pathlib import Path

from _table import REPO, bench_arguments, machine, write_table

DATASET = REPO / "examples" / "datasets" / "text_generation.jsonl"
PYTHONS = {"huggingface": REPO / ".venv" / "bin" / "python", "unsloth": REPO / ".venv-unsloth" / "bin" / "python"}
REQUEST = {"task": "text-generation", "model_name": "forge/tiny-llama", "dataset": "bench", "learning_rate": 5e-3,
           "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "eval_split": 0,
           "optim": "adamw_torch", "group_by_length": False}


def child(provider: str, steps: int, builtin_dir: str) -> None:
    """One training run in this interpreter; prints its figures as JSON."""
    if provider == "unsloth":
        import unsloth  # noqa: F401  (before transformers)
    import resource

    from forge.datasets import read_examples
    from forge.modeling.loading import load_tokenizer
    from forge.modeling.prompts import causal_example
    from forge.schemas import TrainingRequest
    from forge.training.entry import run_training
    from forge.training.manager_link import ProgressUpdate, WorkerEvent
    from forge.training.options import Hardware, resolve_options
    from forge.training.spec import JobSpec

    class Silent:
        def progress(self, update: ProgressUpdate) -> None: ...

        def flush(self) -> None: ...

        def stop_requested(self) -> bool:
            return False

        def event(self, event: WorkerEvent) -> None: ...

    request = TrainingRequest(**REQUEST, provider=provider, max_steps=steps)
    options, _ = resolve_options(request, Hardware(cpus=os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as out:
        spec = JobSpec(job_id="train_bench", request=request, options=options, model_source="forge/tiny-llama",
                       dataset_path=str(DATASET), dataset_format="pairs", output_dir=str(Path(out) / "adapter"),
                       builtin_dir=builtin_dir, runs_dir=out, manager_name="-", namespace="-")
        metrics = run_training(spec, Silent(), is_main=True)["metrics"]
    tokenizer = load_tokenizer("forge/tiny-llama", Path(builtin_dir))
    rows = [causal_example("text-generation", r, chat_template=False) for r in read_examples(DATASET, "pairs")]
    tokens_per_row = statistics.fmean(len(tokenizer(r["prompt"] + r["completion"])["input_ids"]) + 1 for r in rows)
    seconds = metrics["train_loop_s"]
    print(json.dumps({
        "steps_per_s": metrics["train_steps"] / seconds,
        "tokens_per_s": metrics["train_steps"] * REQUEST["per_device_train_batch_size"] * tokens_per_row / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": metrics["final_loss"],
    }))


def run(provider: str, steps: int, builtin_dir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(PYTHONS[provider]), __file__, "--child", provider, "--steps", str(steps),
                           "--builtin-dir", builtin_dir], capture_output=True, text=True, cwd=REPO, env=env,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"{provider} run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = bench_arguments("one short repetition (smoke test)")
    parser.add_argument("--child")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--builtin-dir")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.steps, args.builtin_dir)

    repeats, steps = (1, 5) if args.quick else (args.repeats, args.steps)
    results: dict[str, list[dict]] = {"huggingface": [], "unsloth": []}
    with tempfile.TemporaryDirectory() as builtin_dir:
        for _ in range(repeats):
            for provider in results:  # alternate, so drift on a shared machine hits both alike
                results[provider].append(run(provider, steps, builtin_dir))
    rows = []
    for figure, goal in (("steps_per_s", "~2x on a GPU (Unsloth's claim)"), ("tokens_per_s", "~2x on a GPU"),
                         ("peak_rss_mb", "lower")):
        ours = statistics.median(r[figure] for r in results["unsloth"])
        baseline = statistics.median(r[figure] for r in results["huggingface"])
        row = {"figure": f"provider {figure}", "ours": round(ours, 2), "baseline": round(baseline, 2),
               "ratio": round(ours / baseline, 3), "goal": goal, "repeats": repeats, "steps": steps,
               "machine": machine(), "date": date.today().isoformat()}
        print(json.dumps(row))
        rows.append(row)
    if args.write:
        write_table("providers.py", "unsloth", "huggingface", rows)


if __name__ == "__main__":
    main()
