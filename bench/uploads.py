"""Benchmark: memory and speed of a large dataset upload, in parts through /v1/uploads vs whole through
/api/upload_dataset, against the same running service in one run.

One real service (Ray on 2 CPUs, Serve's HTTP proxy on a free loopback port, a
temporary FORGE_HOME). For each file size, alternating, several repetitions:

- ours: the official `openai` SDK's `client.uploads.upload_file_chunked` (create, parts of
  --part-mb, complete), the way a user sends a large file;
- baseline: the same file posted whole as multipart to /api/upload_dataset, streamed from disk.

Figures: the peak growth of the resident memory of the ingress replica plus Serve's
proxy during the upload (sampled every 20 ms; the goal: at most 100 MB for a 1 GB file),
and MB/s. Figures are medians.

With --url, --home and --dashboard it measures a service that is already running: the
sizes must fit that service's FORGE_MAX_UPLOAD_MB and the part size its
FORGE_UPLOAD_PART_MB, so --quick there sends 1.5 MB in parts of 0.5 MB (the test session
allows 2 MB files and 1 MB parts). Uploaded files stay in its datasets, as with any upload.

    .venv/bin/python bench/uploads.py [--repeats 3] [--quick] [--write] [--upload-mb MB ...] [--part-mb MB]
        [--url URL --home FORGE_HOME --dashboard URL]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from _service import service_arguments
from _table import bench_arguments, write_table
from dataset_validation import generate as generate_jsonl
from serving import RssSampler, Service, log, row
from serving import upload as upload_whole

# The service this script starts: large files, parts of OpenAI's largest size by default.
SETTINGS = {"FORGE_MAX_UPLOAD_MB": "4096"}


def upload_in_parts(url: str, path: Path, part_mb: float) -> float:
    """The SDK's chunked upload of `path`; returns seconds."""
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=1800)
    started = time.perf_counter()
    upload = client.uploads.upload_file_chunked(file=path, mime_type="application/jsonl", purpose="fine-tune",
                                                part_size=int(part_mb * 1024 * 1024))
    seconds = time.perf_counter() - started
    if upload.status != "completed":
        raise SystemExit(f"the upload ended {upload.status}: {upload}")
    return seconds


def main() -> None:
    parser = bench_arguments("small files in small parts (smoke test)")
    parser.add_argument("--upload-mb", nargs="+", type=float, metavar="MB",
                        help="file sizes (default 1024; --quick: 8, or 1.5 with --url)")
    parser.add_argument("--part-mb", type=float, help="part size (default 64, the SDK's; --quick: 0.5)")
    service_arguments(parser)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    sizes_mb = args.upload_mb or ([1024] if not args.quick else [1.5] if args.url else [8])
    part_mb = args.part_mb or (0.5 if args.quick else 64)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="forge-bench-uploads-") as tmp:
        tmp_dir = Path(tmp)
        log(f"measuring the service at {args.url}" if args.url else "starting the service")
        service = Service.from_args(args, tmp_dir / "home", **SETTINGS)
        try:
            pids = {"ingress": service.actor_pid("ServeReplica:modelforge:ApiIngress"),
                    "proxy": service.actor_pid("ProxyActor")}
            for megabytes in sizes_mb:
                path = tmp_dir / f"bench-upload-{megabytes:g}mb.jsonl"
                generate_jsonl(path, megabytes)
                size_mb = path.stat().st_size / 1024 / 1024
                runs: dict[str, list[dict]] = {"parts": [], "whole": []}
                for attempt in range(repeats):
                    log(f"{megabytes:g} MB, repetition {attempt + 1}: in parts of {part_mb:g} MB, then whole")
                    for kind in ("parts", "whole"):
                        with RssSampler(pids) as rss:
                            seconds = (upload_in_parts(service.url, path, part_mb) if kind == "parts" else
                                       upload_whole(service.url, path, path.name))
                        runs[kind].append({"seconds": seconds,
                                           "growth": sum(rss.peak.values()) - sum(rss.before.values())})
                        log(f"{kind}: {seconds:.1f} s; peak RSS growth " + ", ".join(
                            f"{name} {rss.peak[name] - rss.before[name]:.0f} MB" for name in pids))
                        if service.owned:  # keep the temp disk small; the registry entries are harmless here
                            for stored in (service.home / "datasets").glob("bench-upload-*"):
                                stored.unlink()
                path.unlink()
                growth = {kind: statistics.median(r["growth"] for r in results) for kind, results in runs.items()}
                speed = {kind: size_mb / statistics.median(r["seconds"] for r in results)
                         for kind, results in runs.items()}
                # A growth under a megabyte is within the sampler's noise: report at least 1 MB.
                rows.append(row(f"upload RSS growth MB of ingress + proxy, {megabytes:g} MB, /v1/uploads in "
                                f"{part_mb:g} MB parts vs whole to /api/upload_dataset",
                                max(growth["parts"], 1.0), max(growth["whole"], 1.0),
                                "parts: <= 100 MB at 1 GB", repeats))
                rows.append(row(f"upload MB/s, {megabytes:g} MB, /v1/uploads in {part_mb:g} MB parts vs whole",
                                speed["parts"], speed["whole"], "-", repeats))
        finally:
            service.close()
    if args.write:
        write_table("uploads.py", "/v1/uploads", "/api/upload_dataset", rows)


if __name__ == "__main__":
    main()
