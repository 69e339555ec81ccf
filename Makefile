# Two commands for a newcomer: `make demo` and `make test`. Each sets itself up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extras installed by setup (dev: the test tools, pyspark among them; the Spark tests skip
# without a Java runtime). The stamp names them, so a change of extras installs again.
EXTRAS ?= dev
STAMP := $(VENV)/.installed-$(shell echo $(EXTRAS) | cat pyproject.toml requirements/constraints.txt - | cksum | cut -d' ' -f1)
DEMO_HOME ?= .tailor/demo
PYTEST_ARGS ?=
# The suite runs on every core (at most four workers); tests sharing a trained home share a worker.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, os.cpu_count() or 1))")

.PHONY: setup demo shop test bench proof clean help

help:
	@echo "make demo   - set up, then run the whole loop on a simulated shop (no services needed)"
	@echo "make shop   - serve the demo home with its demo shop at http://127.0.0.1:3000/shop/ (after make demo)"
	@echo "make test   - set up, then run the test suite (skips service tests when PostgreSQL/Redis are down)"
	@echo "make bench  - run the benchmarks in bench/ (minutes; results belong in docs/benchmarks.md)"
	@echo "make proof  - the monitoring loop on a simulated seasonal shift (about five minutes)"

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[$(EXTRAS)]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/tailor demo --home $(DEMO_HOME)

shop: setup
	$(BIN)/tailor serve --demo-shop --home $(DEMO_HOME)

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

proof: setup
	TAILOR_PROOF=1 $(BIN)/python -m pytest tests/model/test_monitoring_shift.py $(PYTEST_ARGS)

bench: setup
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .tailor .pytest_cache
