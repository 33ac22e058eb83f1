# symnplm: `make demo` runs the main job on the embedded dataset, `make test` runs the suite.
# Both create their own virtual environment in .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch (on local disk on the development machines). Installing it
# before the package keeps pip from resolving `torch>=2.3` to a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.symnplm-installed

.PHONY: venv test demo bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/symnplm demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check src processors tests benchmarks
	$(BIN)/ruff format --check src processors tests benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache

# the documentation site into site/ (mkdocs-material + mkdocstrings, the `docs` extra)
.PHONY: docs
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
