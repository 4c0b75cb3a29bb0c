# Two commands do everything on a fresh machine (see README "Quick start"):
#   make run    execute every notebook, top to bottom, into build/notebooks/
#   make test   unit tests, nbval over every notebook (SMOKE=1), ruff, no-output check
# Both create the virtual environment in .venv/ when it is missing.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: env run test lint check-outputs bench clean-env strip colab-setup
env: $(STAMP)

# Stage 1 installs torch and mmcv's build tools; stage 2 builds mmcv against that torch
# (--no-build-isolation) and installs the rest. pip keeps the built mmcv wheel in its cache.
$(STAMP): requirements-build.txt requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-build.txt
	MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=$$(nproc) $(PIP) install --no-build-isolation -r requirements.txt
	$(PIP) install --quiet --no-build-isolation --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) -c "import mmcv.ops, mmseg, helpers" && touch $(STAMP)

# The main job: every notebook, in order, on VOC_ROOT (the demo dataset is created there when no
# VOC2012 exists). Executed copies with their outputs go to build/notebooks/.
run: $(STAMP)
	$(PY) -m helpers.run_notebooks

# Tests: unit tests of helpers, then nbval over every notebook in order, all in smoke mode on a
# fresh demo dataset under build/smoke/ (a real VOC2012 in data/ is never touched by tests).
SMOKE_ENV := SMOKE=1 VOC_ROOT=build/smoke/VOCdevkit/VOC2012 WORK_DIR=build/smoke/work_dirs/pspnet_voc12
test: $(STAMP) check-outputs lint
	rm -rf build/smoke
	$(SMOKE_ENV) $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

lint: $(STAMP)
	$(PY) -m ruff check helpers tests notebooks benchmarks

check-outputs: $(STAMP)
	$(PY) -m helpers.notebook_tools check notebooks

strip: $(STAMP)
	$(PY) -m helpers.notebook_tools strip notebooks

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# Colab (run by the first cell of every notebook): keep Colab's CUDA torch, build mmcv's CPU ops
# against it (CUDA hidden: PSPNet needs no mmcv CUDA kernel and the CPU build is 3x faster),
# then install the rest of requirements.txt without its torch pin.
colab-setup:
	pip install -q $$(grep -E '^(setuptools|wheel|ninja|psutil)==' requirements-build.txt)
	CUDA_VISIBLE_DEVICES= MMCV_WITH_OPS=1 FORCE_CUDA=0 pip install --no-build-isolation $$(grep -E '^mmcv==' requirements.txt)
	pip install -q $$(grep -vE '^(\s*#|\s*$$|-r|mmcv==|jupyterlab==|ipykernel==)' requirements.txt)
	pip install -q --no-build-isolation --no-deps -e .

clean-env:
	rm -rf $(VENV)
