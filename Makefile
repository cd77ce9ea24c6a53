# The few commands people type. Each installs what it needs into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
# No .pyc at install: compiling every module of torch and the rest costs more (torch: 41 s
# against 12 s) than compiling the few that are imported, which Python does on first import.
PIP := $(PY) -m pip -q --disable-pip-version-check
INSTALL := $(PIP) install --no-compile
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test test-model test-rest serve-only wheel-check install install-test chromium servers axe lint eval eval-baseline bench bench-resilience bench-index clean

run: install  ## install and run the service (builds the index when missing or stale)
	$(VENV)/bin/ragbot serve

test: install-test chromium servers axe  ## install and run every test (unit, real model, API, Slack, browser) and the linters
	@# Two lanes on two cores: the real model's tests, and the others followed by the wheel check
	@# (whose build finds the example vectors the first lane's build left in the user's cache).
	$(MAKE) --no-print-directory -j2 --output-sync=target test-model test-rest

# Non-model tests run by the model lane, so that the two lanes end together (the other lane
# also runs the wheel check, about 200 s, and the linters): test_index.py's builds take about
# 40 s. Every build with the fake embedder trains on a tenth of the labelled questions (conftest).
LANE_MODEL_ALSO := tests/test_index.py

test-model:
	$(VENV)/bin/pytest -m model
	$(VENV)/bin/pytest -m "not model" $(LANE_MODEL_ALSO)

# The linters too: mypy's first run takes about 100 s of one core, which the other lane leaves
# free (CI's `make lint` after `make test` then finds mypy's cache warm).
test-rest:
	$(VENV)/bin/pytest -m "not model" $(addprefix --ignore=,$(LANE_MODEL_ALSO))
	$(MAKE) --no-print-directory wheel-check
	$(MAKE) --no-print-directory lint

wheel-check: install  ## prove the wheel: from an empty folder it builds, answers and serves; its serve-only install (no torch) serves the same index
	$(PY) scripts/wheel_check.py

serve-only: wheel-check  ## the serve-only install is proved inside the wheel check (one index build for both)

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(INSTALL) --upgrade pip
	# torch first, pinned: the CPU build lies on disk here; unpinned, pip pulls a CUDA build.
	$(INSTALL) torch==2.13.0
	$(INSTALL) -e '.[build]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(INSTALL) -e '.[build,test,postgres]'
	touch $@

chromium:  ## Debian's Chromium for the widget's browser tests (Playwright's own download fails here)
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

axe: tests/browser/axe/node_modules/axe-core/axe.min.js  ## axe-core from npm, for the widget's accessibility audit

tests/browser/axe/node_modules/axe-core/axe.min.js: tests/browser/axe/package.json
	npm install --prefix tests/browser/axe --no-audit --no-fund --silent
	touch $@

servers:  ## Debian's redis-server, nginx and postgresql: the stores' and the deployment's tests start them on loopback
	@command -v redis-server >/dev/null && test -x /usr/sbin/nginx && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server nginx postgresql >/dev/null; }

lint: install-test
	$(VENV)/bin/ruff check ragbot tests scripts
	$(VENV)/bin/ruff format --check ragbot tests scripts
	$(VENV)/bin/mypy

eval: install  ## evaluate ragbot and the baselines, gate on the committed thresholds
	$(VENV)/bin/ragbot eval --baseline --out reports --thresholds ragbot/data/eval_thresholds.json

bench: install  ## HTTP latency, throughput, cold start and memory of the real server
	$(PY) scripts/bench

bench-resilience: install  ## overload, rate limit, slow clients and live reload of the real server, in one run
	$(PY) scripts/bench/resilience.py

bench-index: install  ## index build and search at 1,000 generated articles, flat vs HNSW
	$(PY) scripts/bench_index.py --docs 1000

clean:
	rm -rf $(VENV) index/current index/builds reports artifacts
