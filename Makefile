# Two entry points for a fresh machine: `make repro` (the whole pipeline on the
# embedded default) and `make test` (`make test-fast`: its first tier only). Both create .venv and install
# from the lock.
# `make server` + `make serve` run the pipeline under Prefect (flows/, docs/orchestration.md).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false
# Prefect's state (database, logs) stays in this workspace; the UI is local and offline.
PREFECT_PORT ?= 4200
server serve: export PREFECT_HOME ?= $(abspath .prefect)
serve: export PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api
PIP := $(PY) -m pip install --quiet --disable-pip-version-check --no-warn-script-location

.PHONY: install repro pull seeds paper docs test test-fast server serve ui-check service service-check lock clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml research/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing dependencies into $(VENV) (first run takes a few minutes)"
	@$(PIP) -r requirements.lock 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
	@$(PIP) --no-deps -e . -e research
	@touch $@

repro: install
	dvc repro

# What a fresh clone needs (data, features, every stage's outputs, models/deploy) from the default DVC
# remote; one must be configured (docs/scaling.md). `dvc repro` afterwards runs no stage.
pull: install
	dvc pull

# One DVC experiment per training seed (after `make repro`); mean +- std to reports/seeds,
# then the README results block is rewritten from it (the research wing: research/).
seeds: install
	$(PY) -m a3lign_research seeds --seeds 0 1 2 3 4
	$(PY) -m a3lign_research results

# The paper's tables and figures (after `make repro`): reports/paper/ and the docs' paper block.
paper: install
	$(PY) -m a3lign_research paper

# The docs site (mkdocs.yml, docs/) at http://127.0.0.1:8000; `mkdocs build --strict` is part of the tests.
docs: install
	$(VENV)/bin/mkdocs serve

# The tests in two tiers (tests/tiers.py marks them from what they use): the fast tier (unit tests, minutes),
# then the end-to-end tier (the tiny pipeline built once, DVC, Prefect, Dask, servers, Chromium). A failing fast
# test stops `make test` before any end-to-end test starts. Each tier ends with its ten slowest tests; a test
# that runs past its tier's timeout fails with a traceback of where it hung. The fast tier's tests are
# independent, so they run on every core (pytest-xdist); the end-to-end tests share one built pipeline and run
# in one process.
PYTEST := $(PY) -m pytest -q --durations=10 --durations-min=1
test-fast: install
	$(PYTEST) -m "not e2e" --timeout=300 -n auto

test: test-fast
	$(PYTEST) -m e2e --timeout=900

# A local Prefect server (API + UI at http://127.0.0.1:$(PREFECT_PORT)), bound to 127.0.0.1.
server: install
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# Serve the deployments (pipeline weekly, release on demand) against PREFECT_API_URL; keeps running.
serve: install
	$(PY) -m flows.deployments

# Headless Chromium on the deployments page of a throwaway server; screenshot to reports/prefect_ui/.
ui-check: install
	$(PY) -m a3lign_research.ui_check --pipeline-run

# The HTTP inference service on models/deploy (docs/serving.md); STAGE=prod serves the registry's prod version.
service: install
	$(PY) -m a3lign_dfer serve $(if $(STAGE),--stage $(STAGE))

# Headless Chromium uploads a test video through the service's page; screenshot to reports/serving/.
service-check: install
	$(PY) -m a3lign_research.page_check data/raw/videos/syn_00028.mp4 --out reports/serving/page.png

# Re-resolve requirements.in and pin the result (run after changing a direct dependency).
lock:
	rm -rf /tmp/a3lign-lock && python3 -m venv /tmp/a3lign-lock
	/tmp/a3lign-lock/bin/pip install --quiet -r requirements.in
	/tmp/a3lign-lock/bin/pip freeze --exclude-editable | grep -v "^a3lign-dfer" > requirements.lock

clean-venv:
	rm -rf $(VENV)
