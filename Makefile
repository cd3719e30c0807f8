# tailor: the two commands are `make demo` and `make test`; both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/tailor warmup  # compile the numba kernels once, cached next to the package
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/tailor demo

# G14: the suite runs with the server clock in UTC, then the date-sensitive service tests run
# again with a non-UTC server time zone (results must not depend on the server's TZ).
test: $(STAMP)
	TZ=UTC $(BIN)/python -m pytest -q
	TZ=America/Los_Angeles $(BIN)/python -m pytest -q \
		tests/service/test_time_windows.py tests/service/test_services.py tests/service/test_api.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) demo-output bench-output .pytest_cache .mypy_cache .ruff_cache
