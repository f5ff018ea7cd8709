# trackprint: every entry point a person or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
LIBRARY ?= $(HOME)/Music
CORPUS ?= corpus
PYTEST_ARGS ?=

.PHONY: help setup test up bench corpus clean

help:
	@echo "make up LIBRARY=DIR   set everything up, then fingerprint DIR and keep it in sync (embedded default)"
	@echo "make test             set everything up, then run every test"
	@echo "make bench [CORPUS=DIR]  benchmark the engines on real music (make corpus builds one)"
	@echo "make corpus           build a real-music corpus from Debian's game-music packages"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh $(wildcard rust-server/Cargo.lock rust-server/Cargo.toml)
	bash scripts/setup.sh $(VENV)
	touch $@

test: setup
	bash scripts/test.sh $(PYTEST_ARGS)

up: setup
	$(VENV)/bin/trackprint up "$(LIBRARY)"

bench: setup
	$(VENV)/bin/trackprint bench "$(CORPUS)"

corpus:
	bash scripts/build_corpus.sh "$(CORPUS)"

clean:
	rm -rf $(VENV) rust-server/target build *.egg-info
