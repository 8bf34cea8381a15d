# The README's two commands: `make run` starts the app, `make test` runs the tests.
# Both create or reuse .venv/ and install the pinned requirements when they change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APP_STAMP := $(VENV)/.app-installed
TEST_STAMP := $(VENV)/.test-installed
PORT ?= 8501

.PHONY: run test bench lint clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(APP_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(TEST_STAMP): requirements.txt requirements-test.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $(APP_STAMP) $@

run: $(APP_STAMP)
	$(PY) -m streamlit run app.py --server.port $(PORT)

test: $(TEST_STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest

bench: $(TEST_STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	HF_HUB_OFFLINE=1 $(PY) -m bench

lint: $(TEST_STAMP)
	$(PY) -m ruff check core tests
