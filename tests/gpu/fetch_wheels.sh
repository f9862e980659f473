#!/usr/bin/env bash
# Download, here, the wheels the GPU tier needs beyond what a bare GPU machine has
# (torch with CUDA, transformers, peft, accelerate, pyarrow, pandas, pytest): the
# project's pins, for Python 3.12 on x86-64, into .whl/ (about 50 MB; bitsandbytes is 43).
#
#     tests/gpu/fetch_wheels.sh && tests/gpu/run_tier.sh .whl     # the second on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.whl
mkdir -p "$out"
pins=$(.venv/bin/pip freeze 2>/dev/null | grep -i -E '^(pydantic|pydantic[-_]core|pydantic[-_]settings|annotated[-_]types|typing[-_]inspection|python[-_]dotenv|trl|bitsandbytes|datasets|dill|multiprocess|rouge[-_]score|nltk)==' || true)
[ -n "$pins" ] || { echo "run 'make install' first: the pins are read from .venv" >&2; exit 1; }
for pin in $pins; do
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d "$out" "$pin" \
      || python3 -m pip download --quiet --no-deps -d "$out" "$pin"   # pure-Python sdists become wheels below
done
# rouge-score ships as an sdist only: build its (pure-Python) wheel here.
for sdist in "$out"/*.tar.gz; do
    [ -e "$sdist" ] || continue
    python3 -m pip wheel --quiet --no-deps -w "$out" "$sdist" && rm "$sdist"
done
du -sh "$out"
