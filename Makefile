# Every target creates .venv and installs on first use; nothing needs to be installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
PORT   ?= $(or $(COLLECTOR_PORT),8000)

.PHONY: run test lint typecheck bench soak clean

define make_venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
endef

# `make run` needs only the package; test, lint, typecheck, bench and soak add the [test] extras.
$(RUN_STAMP): pyproject.toml
	$(make_venv)
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	$(make_venv)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/collector serve --port $(PORT)

# The browser test drives Debian's chromium; install it where it is missing.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: $(CHROMIUM) missing and apt-get not usable as this user: the browser test will not run"; fi

# mypy as pyproject's [tool.mypy] says: strict on the core and the ports, plain elsewhere.
typecheck: $(STAMP)
	$(BIN)/mypy

test: typecheck $(CHROMIUM)
	$(BIN)/python -m pytest -q

lint: typecheck
	$(BIN)/ruff check collector tests bench soak
	$(BIN)/ruff format --check collector tests bench soak

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@command -v wrk >/dev/null 2>&1 || { \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
		else echo "bench: install wrk (Debian: apt-get install wrk)"; exit 1; fi; }
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

# Not part of `make test`: a soak run of SOAK_MINUTES min (default 30) at 200 events/s,
# then the fault run; see docs/reliability.md.
soak: $(STAMP)
	$(BIN)/python -m soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache *.egg-info
