# The README's two commands: `make run` starts the app, `make test` runs the tests.
# Both create or reuse .venv/ and install the pinned requirements when they change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APP_STAMP := $(VENV)/.app-installed
TEST_STAMP := $(VENV)/.test-installed
PORT ?= 8501
# The studio listens on this computer only; ADDRESS=0.0.0.0 (or CONCEPTLAB_ADDRESS) serves a network, which it
# refuses unless ACCOUNTS=1 (people sign in) or OPEN_TO_ANYONE_ON_THE_NETWORK=1 says everyone who can reach it may.
ADDRESS ?= $(or $(CONCEPTLAB_ADDRESS),127.0.0.1)

.PHONY: run test fuzz bench lint clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The pinned packages, then this project itself in editable mode: .venv/bin/conceptlab runs this checkout.
$(APP_STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(TEST_STAMP): requirements.txt requirements-test.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(APP_STAMP) $@

run: $(APP_STAMP)
	$(PY) -m core studio --address $(ADDRESS) --port $(PORT) $(if $(filter 1,$(ACCOUNTS)),--accounts) \
		$(if $(filter 1,$(OPEN_TO_ANYONE_ON_THE_NETWORK)),--open-to-anyone-on-the-network)

# The OpenID provider the single sign-on test starts (tests/oidc/, from the npm registry, pinned by its lock file).
OIDC_STAMP := tests/oidc/node_modules/.installed
$(OIDC_STAMP): tests/oidc/package.json tests/oidc/package-lock.json
	if command -v npm >/dev/null; then npm ci --prefix tests/oidc --silent --no-audit --no-fund && touch $@; fi

test: $(TEST_STAMP) $(OIDC_STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest

# The long forms of the fuzzers and of the SIGKILL tests (tests/test_fuzz.py, tests/test_crash.py): tens of
# minutes. FUZZ_EXAMPLES=N sets every fuzzer's number of examples; failures found are kept in .hypothesis/.
fuzz: $(TEST_STAMP)
	HF_HUB_OFFLINE=1 CONCEPTLAB_FUZZ=1 CONCEPTLAB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest --timeout=0 \
		--hypothesis-show-statistics tests/test_fuzz.py tests/test_crash.py tests/test_bad_inputs.py tests/test_concurrency.py

bench: $(TEST_STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	HF_HUB_OFFLINE=1 $(PY) -m bench

lint: $(TEST_STAMP)
	$(PY) -m ruff check core tests
