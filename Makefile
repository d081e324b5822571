# Two commands do everything on a fresh machine:
#   make app    set up, build the sample workspace if missing, open the workbench on it
#   make test   set up (app + test dependencies, Debian's chromium) and run the whole suite

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAMPLE := data/sample/dbpedia-entity-5k
WORKSPACE ?= data/workspaces/sample.duckdb
PORT ?= 8501
# Listen on this machine only; `make app ADDRESS=0.0.0.0` serves the network (then configure
# sign-in, see the README's Reliability and security section).
ADDRESS ?= 127.0.0.1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: app test install install-dev browser sample

$(VENV)/.app-installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.app-installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.app-installed
install-dev: $(VENV)/.dev-installed

# Debian's chromium for the browser tests (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The sample workspace: the bundled dbpedia-entity-5k with its labeled split, mined once.
# Built under a temporary name and moved into place, so an interrupted build leaves nothing behind.
$(WORKSPACE): | $(VENV)/.app-installed
	@mkdir -p $(dir $@)
	rm -f $@.building $@.building.wal
	$(PY) -m core ingest --workspace $@.building --beir $(SAMPLE) --split labeled --name dbpedia-entity-5k
	$(PY) -m core mine --workspace $@.building --strategy curated --num-negatives 5
	mv $@.building $@

sample: $(WORKSPACE)

app: $(VENV)/.app-installed $(WORKSPACE)
	$(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false -- --workspace $(WORKSPACE)

test: $(VENV)/.dev-installed browser
	$(PY) -m pytest
