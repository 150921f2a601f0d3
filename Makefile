# The README's two commands: `make run` and `make test`. Every target sets up .venv by itself.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.stamp-setup
PYTEST_ARGS ?= -n 2

.PHONY: setup run test test-all bench lint results results-policies partition-tasks baselines train agents clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH"; exit 2; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build of torch first: a plain `torch` would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	# ray: the Ray backend of compare/sweep and its test (about 25 s and 500 MB with ray[tune]);
	# fast: numba, the compiled loops of Partition-v0's epoch fast path (about 210 MB).
	$(BIN)/python -m pip install -q -e '.[dev,train,ray,fast]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/mig-gym compare scenarios/paper_resnet50.yaml \
	    --policies paris+elsa,paris+fifs,homo7+fifs,homo1+fifs --seeds 3 --logdir runs/

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) -m ''

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check mig_gym tests benchmarks tools
	$(BIN)/ruff format --check mig_gym tests benchmarks tools

# Train the default agent (MaskablePPO on Dispatch-v0, paper_resnet50, ELSA warm start); ~7 min.
# one agent on one task with its shipped recipe (TASK=..., default the 90 % resnet50 Dispatch task)
TASK ?= Dispatch-resnet50-90-v0
train: $(STAMP)
	$(BIN)/mig-gym train $(TASK) --logdir runs/

# docs/tasks.md "Trained agents": one agent per task (3 Partition + 3 Dispatch tasks, each within
# its recipe's budget) scored on the baselines' held-out seeds, with learning curves.
agents: $(STAMP)
	$(BIN)/python tools/agent_results.py

# docs/results.md: policies (LBT bisection, 7 settings + sensitivity: ~5 min on 2 busy cores)
# and learned agents (~40 min more).
results: $(STAMP)
	$(BIN)/python tools/make_results.py --section all

# docs/partition_tasks.md: the drift tasks' reference scores (10 seeds, 3-9 min on 2 cores).
partition-tasks: $(STAMP)
	$(BIN)/python tools/partition_tasks.py --seeds 10 --jobs 2

# docs/tasks.md: baseline score tables of every task but Partition-diurnal-v0 (10 held-out seeds,
# about 9 min on 2 busy cores); add it with `mig-gym baselines --tasks Partition-diurnal-v0` (21 min).
baselines: $(STAMP)
	$(BIN)/mig-gym baselines --seeds 10 --jobs 2

results-policies: $(STAMP)
	$(BIN)/python tools/make_results.py --section policies

clean:
	rm -rf $(VENV) runs build *.egg-info
