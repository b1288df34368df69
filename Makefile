# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch and torchvision first, pinned to the builds on this machine's disk, so that nothing
# later (timm, thop, ptflops) can pull another torch.
TORCH   := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint fmt bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m lstndsl.demo

lint: $(STAMP)
	$(BIN)/ruff check lstndsl compiler tests bench
	$(BIN)/ruff format --check lstndsl compiler tests bench
	$(BIN)/mypy

# Two xdist workers, one thread each: on 2 cores, torch's default of 2 threads per worker
# oversubscribes the machine and made some tests 25x slower.
test: $(STAMP) lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q

fmt: $(STAMP)
	$(BIN)/ruff format lstndsl compiler tests bench
	$(BIN)/ruff check --fix lstndsl compiler tests bench

# The measurements behind BENCHMARKS.md (about 10 minutes on 2 idle cores).
bench: $(STAMP)
	$(BIN)/python bench/fuse.py
	$(BIN)/python bench/data_pipeline.py
	$(BIN)/python bench/train_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs
