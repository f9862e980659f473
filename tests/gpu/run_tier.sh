#!/usr/bin/env bash
# The GPU tier on a bare GPU machine, without Ray: installs the wheels it is handed into a
# private folder, runs `pytest -m gpu tests/gpu`, and prints each test's result.
#
#     tests/gpu/run_tier.sh WHEEL_DIR      (WHEEL_DIR from tests/gpu/fetch_wheels.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
wheels="${1:?usage: tests/gpu/run_tier.sh WHEEL_DIR}"
site="$(mktemp -d)/site"
python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
exec python3 -m pytest -m gpu tests/gpu -p no:cacheprovider -v -rs -o addopts=""
