# trackprint: every entry point a person or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
LIBRARY ?= $(HOME)/Music
CORPUS ?= corpus
PYTEST_ARGS ?=

.PHONY: help setup setup-run test up bench corpus clean

help:
	@echo "make up LIBRARY=DIR   set everything up, then fingerprint DIR and keep it in sync (embedded default)"
	@echo "make test             set everything up, then run every test"
	@echo "make bench [CORPUS=DIR]  benchmark the engines on real music (make corpus builds one)"
	@echo "make corpus           build a real-music corpus from Debian's game-music packages"

# Two installs into the same venv: `run` (what running needs: `make up`, `make bench`)
# and `test` (that plus the test and export extras: `make test`). The test install is a
# superset, so it satisfies the run stamp too. The Rust sources are prerequisites: the
# server in $(VENV)/bin is a copy, rebuilt (incrementally) when they change.
SETUP_DEPS := pyproject.toml scripts/setup.sh $(wildcard rust-server/Cargo.lock rust-server/Cargo.toml) \
	$(shell find rust-server/src -name '*.rs' 2>/dev/null)

setup: $(VENV)/.installed-test

setup-run: $(VENV)/.installed-run

$(VENV)/.installed-run: $(SETUP_DEPS)
	bash scripts/setup.sh run $(VENV)
	touch $@

$(VENV)/.installed-test: $(SETUP_DEPS)
	bash scripts/setup.sh test $(VENV)
	touch $@ $(VENV)/.installed-run

test: setup
	bash scripts/test.sh $(PYTEST_ARGS)

up: setup-run
	$(VENV)/bin/trackprint up "$(LIBRARY)"

bench: setup-run
	$(VENV)/bin/trackprint bench "$(CORPUS)"

corpus:
	bash scripts/build_corpus.sh "$(CORPUS)"

clean:
	rm -rf $(VENV) rust-server/target build dist *.egg-info
