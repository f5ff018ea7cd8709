# trackprint: every entry point a person or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
LIBRARY ?= $(HOME)/Music
CORPUS ?= corpus
# `make eval` keeps its labelled corpus apart from `make bench`'s FLAC one (bench searches CORPUS recursively):
# CORPUS=DIR on the command line (or in the environment) names it, else corpus-eval.
EVAL_CORPUS := $(if $(filter command line environment,$(origin CORPUS)),$(CORPUS),corpus-eval)
# `make eval-tempo` builds its held-out sets in TEMPO_DIR (one folder per set), apart from both corpora.
TEMPO_DIR ?= corpus-tempo
PYTEST_ARGS ?=

.PHONY: help setup setup-run test up bench eval eval-tempo corpus clean

help:
	@echo "make up LIBRARY=DIR   set everything up, then fingerprint DIR and keep it in sync (embedded default)"
	@echo "make test             set everything up, then run every test"
	@echo "make bench [CORPUS=DIR]  benchmark the engines on real music (make corpus builds one)"
	@echo "make corpus           build a real-music corpus from Debian's game-music packages"
	@echo "make eval [CORPUS=DIR]   retrieval benchmark of the distance and baselines on a labelled corpus (docs/evaluation.md)"
	@echo "make eval-tempo [TEMPO_DIR=DIR]  tempo agreement with Essentia on held-out music, next to degara (docs/evaluation.md)"

# Two installs into the same venv: `run` (what running needs: `make up`, `make bench`)
# and `test` (that plus the test and export extras: `make test`). The test install is a
# superset, so it satisfies the run stamp too. The Rust sources are prerequisites: the
# server in $(VENV)/bin is a copy, rebuilt (incrementally) when they change.
SETUP_DEPS := pyproject.toml scripts/setup.sh $(wildcard rust-server/Cargo.lock rust-server/Cargo.toml) \
	$(shell find rust-server/src -name '*.rs' 2>/dev/null) \
	$(wildcard tests/tools/heaac-encode/Cargo.lock tests/tools/heaac-encode/Cargo.toml) \
	$(shell find tests/tools/heaac-encode/src -name '*.rs' 2>/dev/null)

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

# eval adds the bench extra (bliss-audio, essentia) and the test extra (librosa): the baselines and the tempo
# references. eval-similarity says which of them it could not run, so a failed install only leaves those out.
$(VENV)/.installed-eval: $(VENV)/.installed-run
	PYTHONWARNINGS="ignore:Editable installation" $(PIP) install --quiet -e '.[bench,test]' && touch $@ \
		|| echo "make eval: the bench or test extra did not install; eval-similarity will say what it leaves out"

eval: $(VENV)/.installed-eval
	$(VENV)/bin/trackprint eval-similarity "$(EVAL_CORPUS)"

eval-tempo: $(VENV)/.installed-eval
	$(VENV)/bin/trackprint eval-tempo "$(TEMPO_DIR)"

corpus:
	bash scripts/build_corpus.sh "$(CORPUS)"

clean:
	rm -rf $(VENV) rust-server/target build dist *.egg-info
