# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-bench lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test,dev,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/langevin-nets demo --out demo_out

# The quick runs of the heavier benchmark scripts (BlackJAX, NumPyro, scaling) take about
# three minutes more; they run in `make test-bench`, while `make test` keeps the UCI and
# Langevin-overhead smoke runs.
# Three workers on two cores: much of the suite is single-threaded compilation and waiting
# on subprocesses, and a third worker fills those gaps (7:03 against 8:26 with two, side by
# side on one machine). --dist loadfile keeps each module's fixtures in one worker.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 3 --dist loadfile -m "not bench_smoke"

test-bench: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m bench_smoke tests/test_benchmarks_smoke.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/langevin_overhead.py --out benchmarks/results/langevin_overhead.json

clean:
	rm -rf $(VENV) demo_out .pytest_cache
