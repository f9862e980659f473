# The two commands: `make serve` starts the service, `make test` runs the suite.
# Both create .venv and install the pinned dependency set on first use.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export RAY_TRAIN_ENABLE_PRINT_PATCH := 0

.PHONY: serve test install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	@echo "ModelForge API on http://localhost:8000 (Ray dashboard: http://127.0.0.1:8265). Ctrl-C stops everything."
	$(BIN)/serve run deployments.app:app

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .forge .pytest_cache
