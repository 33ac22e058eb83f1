# symnplm: `make demo` runs the main job on the embedded dataset, `make test` runs the suite.
# Both create their own virtual environment in .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch (on local disk on the development machines). Installing it
# before the package keeps pip from resolving `torch>=2.3` to a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# `make demo` installs what the demo needs (the `all` extra); `make test` adds the
# test tools and Pythia 8 (`test` extra) on top.
BASE   := $(VENV)/.symnplm-base
DEMO   := $(VENV)/.symnplm-all
TESTS  := $(VENV)/.symnplm-test

.PHONY: venv test demo bench lint clean

venv: $(DEMO)

$(BASE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	touch $@

$(DEMO): $(BASE)
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $@

$(TESTS): $(DEMO)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

test: $(TESTS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(DEMO)
	$(BIN)/symnplm demo

bench: $(TESTS)
	$(BIN)/python -m benchmarks

lint: $(TESTS)
	$(BIN)/ruff check src processors tests benchmarks docs/hooks
	$(BIN)/ruff format --check src processors tests benchmarks docs/hooks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist .pytest_cache

# the documentation site into site/ (mkdocs-material + mkdocstrings, the `docs` extra)
.PHONY: docs
docs: $(TESTS)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
