# The two commands: `make serve` starts the service, `make test` runs the suite.
# Both create .venv and install the pinned dependency set on first use.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip compiles bytecode one file at a time (half of a fresh install's time), so it
# installs without and compileall then compiles on every core. Compiling at install
# matters: where PYTHONDONTWRITEBYTECODE is set (CI sets it), a venv without .pyc files
# makes every Ray worker compile torch and transformers from source (about 12 CPU-s each).
PIP_INSTALL = pip install --quiet --no-compile
# A few files pip ships are not Python 3.11 (torch's py312 test helpers); pip skips them
# too, so compile errors are expected and ignored.
compile = $(1)/bin/python -m compileall -q -j 0 $(1)/lib >/dev/null || true
# The unsloth provider runs in its own venv (see envs/unsloth.txt); about 7 GB.
UNSLOTH_VENV := .venv-unsloth
UNSLOTH_STAMP := $(UNSLOTH_VENV)/.installed

export RAY_TRAIN_ENABLE_PRINT_PATCH := 0

.PHONY: serve test install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) -e '.[test]'
	$(call compile,$(VENV))
	touch $(STAMP)

$(UNSLOTH_STAMP): envs/unsloth.txt pyproject.toml $(STAMP)
	test -x $(UNSLOTH_VENV)/bin/python || $(PYTHON) -m venv $(UNSLOTH_VENV)
	$(UNSLOTH_VENV)/bin/$(PIP_INSTALL) -r envs/unsloth.txt
	# forge itself, without the core's pins: the workers import the project's recipes.
	$(UNSLOTH_VENV)/bin/$(PIP_INSTALL) --no-deps -e .
	$(call compile,$(UNSLOTH_VENV))
	# Says whether the provider works; services started on this environment reuse the answer.
	$(BIN)/python -m forge.unsloth_env $(UNSLOTH_VENV)/bin/python
	touch $(UNSLOTH_STAMP)

install: $(STAMP) $(UNSLOTH_STAMP)

serve: install
	@echo "ModelForge console on http://localhost:8000/ (API docs: /docs). Ctrl-C stops everything."
	@echo "Ray dashboard: http://127.0.0.1:8265 - it asks for a token (Ray's token authentication is on);"
	@echo "  once the service runs, '$(BIN)/ray get-auth-token' (in another terminal) prints it."
	$(BIN)/serve run deployments.app:app

# The console's browser tests drive Debian's chromium through Playwright (whose own browser download
# needs the internet): installed once, here, when it is missing.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -q && apt-get install -y -q chromium

# Two pytest workers (tests/conftest.py's WingScheduling): one runs the integration tests against the
# session's service, the other the in-process wings beside it.
test: install $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 --dist loadscope

# Benchmarks (not tests): each script compares ours with the bare library in one run
# and records its figures in docs/benchmarks.md.
bench: install
	for script in bench/[!_]*.py; do $(BIN)/python $$script --write || exit 1; done

clean:
	rm -rf $(VENV) $(UNSLOTH_VENV) .forge .pytest_cache
