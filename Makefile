# The two commands a newcomer runs from a fresh clone: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stepline-installed
DEMO_DIR ?= stepline_logs
CHROMIUM := /usr/bin/chromium

.PHONY: demo test test-fast lint install benchmark clean postgres

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is pinned first: anything that pulls torch in later then finds it there, instead of a CUDA build.
$(STAMP): pyproject.toml Makefile $(wildcard src/stepline/*.cpp src/stepline/*.hpp) | $(PY)
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The browser tests drive Debian's Chromium; no tool may download a browser of its own.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "The browser tests need Debian's chromium (sudo apt-get install chromium); they skip without it."; \
	fi

# The PostgreSQL store's tests need a local server: Debian's postgresql, started, with a role for this user.
postgres:
	@bash .ci/postgres

demo: $(STAMP)
	STEPLINE_DIR=$(DEMO_DIR) $(PY) examples/transformers_trainer.py
	$(VENV)/bin/stepline show bert-tiny --project examples --dir $(DEMO_DIR)
	$(VENV)/bin/stepline serve $(DEMO_DIR)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy

# Tests run in up to 4 worker processes: each starts its own servers on free ports and its own databases.
test: lint $(CHROMIUM) postgres
	$(PY) -m pytest --numprocesses auto --maxprocesses 4

# A minute's check while working: no framework training, browser, PostgreSQL, peer server, build or fuzz.
test-fast: $(STAMP)
	$(PY) -m pytest --numprocesses auto --maxprocesses 4 -m "not slow and not browser and not postgres and not peer" \
		--ignore=tests/integrations

benchmark: $(STAMP)
	$(PY) benchmarks/log_overhead.py
	$(PY) benchmarks/server_queries.py
	$(PY) benchmarks/integration_overhead.py
	$(PY) benchmarks/remote_ingest.py
	$(PY) benchmarks/peer_requests.py
	$(PY) benchmarks/logbook_scale.py
	$(PY) benchmarks/system_sampler.py
	$(PY) benchmarks/media_log.py

clean:
	rm -rf $(VENV) stepline_logs .pytest_cache .hypothesis
