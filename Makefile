# Quick start: `make run` (set up + main job), `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: setup setup-dev data run pipeline test test-fast lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned, so no dependency pulls a multi-GB CUDA build
	$(BIN)/pip install -q $(TORCH)

$(VENV)/.setup: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e . $(TORCH)
	touch $@

$(VENV)/.setup-dev: $(VENV)/.setup
	$(BIN)/pip install -q -e '.[dev,postgres]' $(TORCH)
	touch $@

setup: $(VENV)/.setup
setup-dev: $(VENV)/.setup-dev

# Fashion-MNIST where this machine allows: an explicit folder, the Debian package
# (dataset-fashion-mnist), the user cache; else install that package (root + apt) or
# download with checksums. `make test` needs none of it (the tests ship a slice), nor
# PostgreSQL (postgresql: .ci/run starts one for the Optuna RDB test, which skips without).
data: setup
	$(BIN)/effnet data

# The quick scaling study (Table 7 on Fashion-MNIST: baseline vs depth/width/resolution/compound
# at 3.45x multiply-adds, on a 16 px proxy below the images' 28 px); --resume makes a second
# `make run` reuse finished runs.
run: data
	$(BIN)/effnet study --quick --out runs/study-quick --resume

# The paper's three steps on Fashion-MNIST (docs/archsearch.md): search a baseline at the
# quick study's cost (step 0), its alpha/beta/gamma (step 1), then the family at phi 1 and 2
# (step 2). Each step resumes where it stopped; about 12 minutes on 2 cores (step 0: 24
# trials at ~5 a minute; step 1: 22 candidates, 4.5 min on the committed search's network).
PIPELINE := runs/pipeline
pipeline: data
	$(BIN)/effnet search-architecture --quick --out $(PIPELINE)/architecture
	$(BIN)/effnet search-coefficients $(PIPELINE)/architecture/next-coefficients.json \
		--out $(PIPELINE)/coefficients
	for phi in 1 2; do $(BIN)/effnet scale $(PIPELINE)/architecture/best-arch.json --phi $$phi \
		--coefficients $(PIPELINE)/coefficients/best.json --save $(PIPELINE)/phi$$phi.json --force; done

lint: setup-dev
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

format: setup-dev
	$(BIN)/ruff format src tests benchmarks tools
	$(BIN)/ruff check --fix src tests benchmarks tools

# one pytest process per core (each test file in one process: its fixtures are built once);
# every test is single-threaded, so on 2 cores this halves the time (5 min -> 3)
test: lint
	$(BIN)/python -m pytest -n auto --dist loadfile

# the inner loop: everything but the slow tests (subprocess trainings, torchrun, workers)
test-fast: setup-dev
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
