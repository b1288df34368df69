# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch and torchvision first, pinned to the builds on this machine's disk, so that nothing
# later (timm, thop, ptflops) can pull another torch. The `ray` extra (sweep --ray) installs
# from this disk too, so that `make test` tests it.
TORCH   := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint fmt bench mutate clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

# The product end to end on the embedded data, in about two minutes on 2 CPU cores.
DEMO := runs/demo
demo: $(STAMP)
	@echo; echo "== 1/5  check the paper's three nets: every shape, parameter count and total agrees"
	$(BIN)/lstndsl check specs/stn.spec specs/vstn.spec specs/lstn.spec
	@echo; echo "== 2/5  check Table 3 as the paper printed it: five inconsistencies, each at its row with its fix (exit 1 expected)"
	$(BIN)/lstndsl check specs/paper/table3-lstn-as-printed.spec; test $$? -eq 1
	@echo; echo "== 3/5  compile L-STN to PyTorch; torch agrees with the catalog row by row"
	$(BIN)/lstndsl compile specs/lstn.spec
	@echo; echo "== 4/5  cost: L-STN + ResNet-18, the paper's convention (its GFLOPS are these MACs) and a complete count"
	$(BIN)/lstndsl profile specs/lstn.spec --backbone resnet18 --num-classes 10
	@echo; echo "== 5/5  train L-STN + ResNet-18 on RTS MNIST (5,000 real digits rotated, scaled, placed at random; 2 epochs, θ supervised)"
	rm -rf $(DEMO)
	$(BIN)/lstndsl train specs/lstn.spec --backbone resnet18 --max-epochs 2 --theta-loss 10 --out $(DEMO)
	@echo; echo "demo done: $(DEMO)/summary.json, $(DEMO)/metrics.jsonl, and $(DEMO)/pictures/transform-selected.png"
	@echo "(input digits, what the spatial transformer made of them, what the ideal θ makes of them)"

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

# Mutation testing (issue 13), not part of `make test`: mutmut (the `mutate` extra) mutates the
# files pyproject's [tool.mutmut] names, one mutant at a time, and runs the tests that reach the
# mutated function; a mutant no test notices survives. A fresh run every time (mutants/ is
# rebuilt); the score and the survivors' classes are in README's "Development". Then
# `$(BIN)/mutmut show NAME` prints one mutant's diff, `$(BIN)/mutmut browse` walks them.
MUTATE_STAMP := $(VENV)/.mutate
$(MUTATE_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,mutate]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	rm -rf mutants
	OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut export-cicd-stats
	@cat mutants/mutmut-cicd-stats.json
	@$(BIN)/mutmut results

clean:
	rm -rf $(VENV) mutants .pytest_cache .mypy_cache .ruff_cache runs
