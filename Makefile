# The two commands of the book: `make book` and `make test`.
# Variables: PRESET (paper), NULL_PRESET (null), N_JOBS (2), DATA_DIR (data), PYTHON (python3),
# SET (notebook parameters for every notebook that declares them, e.g. SET="n_sims=50 n_permutations=1000"),
# ENGINE (local, or dask: a local Dask cluster of N_JOBS workers, or the scheduler at SCHEDULER),
# BIDS_DIR (your own BIDS dataset: `make book BIDS_DIR=...` runs every chapter whose inputs it holds on it,
# with FMRIPREP_DIR and ASLPREP_DIR its derivatives when they are not under BIDS_DIR/derivatives).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= paper
NULL_PRESET ?= null
N_JOBS ?= 2
DATA_DIR ?= data
SET ?=
ENGINE ?= local
SCHEDULER ?=
ENGINE_ARGS := --engine $(ENGINE) $(if $(SCHEDULER),--scheduler-address $(SCHEDULER))
BIDS_DIR ?=
FMRIPREP_DIR ?=
ASLPREP_DIR ?=
OWN_DATA_ARGS := $(if $(BIDS_DIR),--bids-dir $(BIDS_DIR)) $(if $(FMRIPREP_DIR),--fmriprep-dir $(FMRIPREP_DIR)) \
	$(if $(ASLPREP_DIR),--aslprep-dir $(ASLPREP_DIR))
STAMP := $(VENV)/.installed

.PHONY: venv simulate notebooks html book test test-fast lint benchmark freeze clean clean-results

# The virtual environment: created if missing, reinstalled when the requirements change.
$(STAMP): requirements.txt requirements-citation.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-citation.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (craving-circuits)" >/dev/null
	touch $@

venv: $(STAMP)

# Simulated studies, cocaine and baclofen, at PRESET and NULL_PRESET (each skipped when already complete
# with the same parameters).
simulate: $(STAMP)
	$(PY) -m craving_circuits simulate --preset $(PRESET) --data-dir $(DATA_DIR) --n-jobs $(N_JOBS) $(ENGINE_ARGS)
	$(PY) -m craving_circuits simulate --preset $(NULL_PRESET) --data-dir $(DATA_DIR) --n-jobs $(N_JOBS) $(ENGINE_ARGS)

# Execute every notebook of book/runs.yml with papermill into book/executed/
# (with BIDS_DIR, on that dataset: the main studies are not simulated; the simulated runs write theirs).
notebooks: $(if $(BIDS_DIR),$(STAMP),simulate)
	$(PY) -m craving_circuits execute --plan book/runs.yml --preset $(PRESET) --null-preset $(NULL_PRESET) \
		--data-dir $(DATA_DIR) --n-jobs $(N_JOBS) $(ENGINE_ARGS) $(if $(SET),--set $(SET)) $(OWN_DATA_ARGS)

# Render the executed notebooks and pages (Jupyter Book never executes anything itself).
html: $(STAMP)
	$(PY) -m craving_circuits mathjax _mathjax_static/mathjax
	$(VENV)/bin/jupyter-book build . --builder html --keep-going

book: notebooks html
	@echo "The book is in _build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest -n $(N_JOBS) --dist loadfile --durations=15

# Everything except the paper-sized recovery runs and the book build.
test-fast: $(STAMP)
	$(PY) -m pytest -n $(N_JOBS) --dist loadfile -m "not slow and not book"

# Lint and formatting (ruff, configured in pyproject.toml); `ruff format src tests benchmarks` fixes the format.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check src tests benchmarks

benchmark: $(STAMP)
	$(PY) benchmarks/benchmark.py --data-dir $(DATA_DIR) --preset $(PRESET)

# Re-pin requirements.txt from the current environment.
freeze: $(STAMP)
	{ echo "# Pinned, complete environment for the book (Python 3.11). Regenerate with: make freeze"; \
	  $(PY) -m pip freeze --all --exclude-editable | grep -v '^pip==' \
	  | grep -v -i -x -F -f requirements-citation.txt \
	  | sed -E 's|^([^ ]+) @ file://.*/[^/-]+-([^-]+)-.*$$|\1==\2|'; } > requirements.txt

clean-results:
	rm -rf results book/executed _build

clean: clean-results
	rm -rf $(DATA_DIR) _mathjax_static/mathjax
