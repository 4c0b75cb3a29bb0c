# Two commands do everything on a fresh machine (see README "Quick start"):
#   make run    execute every notebook, top to bottom, into build/notebooks/
#   make test   unit tests, nbval over every notebook (SMOKE=1), ruff, no-output check
# Teachers (source/README.md): `make assign` makes the student release in notebooks/ from the
# instructor notebooks in source/voc/; `make grade SUBMITTED=DIR OUT=FILE` autogrades hand-ins.
# Both create the virtual environment in .venv/ when it is missing.

# The Python of a new .venv: a supported one present, 3.11 (the course's reference: torch 2.13 has a
# CPU wheel for it here) then 3.12 (a fresh Ubuntu 24.04 has only 3.12; pip then takes torch's
# CUDA build, which also runs on a CPU), on PATH or installed by pyenv
# (`make env PYTHON=/path/to/python3.x` chooses). An existing .venv keeps its Python.
on_path = $(shell python$(1) -c 'import sys; print(sys.executable)' 2>/dev/null)
in_pyenv = $(lastword $(sort $(wildcard $(shell pyenv root 2>/dev/null)/versions/$(1).*/bin/python$(1))))
find_python = $(or $(call on_path,$(1)),$(call in_pyenv,$(1)))
PYTHON ?= $(or $(call find_python,3.11),$(call find_python,3.12))
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# nbgrader runs the `alembic` CLI: the venv's bin/ must be on PATH for it.
VENV_PATH := PATH="$(abspath $(VENV))/bin:$$PATH"
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: env run test lint check-outputs bench clean-env strip colab-setup assign grade
env: $(STAMP)

# Stage 1 installs torch and mmcv's build tools; stage 2 builds mmcv against that torch
# (--no-build-isolation) and installs the rest. pip keeps the built mmcv wheel in its cache.
# This repository installs the teacher's tools too (requirements-teacher.txt: nbgrader, nbval, pytest,
# ruff, the grading sandbox); the student repository's Makefile installs requirements.txt only.
REQUIREMENTS ?= requirements-teacher.txt
$(STAMP): requirements-build.txt requirements.txt $(REQUIREMENTS) pyproject.toml
	@test -x $(PY) || test -n "$(PYTHON)" || { echo "No Python 3.12 or 3.11 found. Install one" \
	  "(Ubuntu 24.04: sudo apt install python3.12-venv; or pyenv install 3.12), or run" \
	  "make env PYTHON=/path/to/python3.12"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-build.txt
	MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=$$(nproc) $(PIP) install --no-build-isolation -r $(REQUIREMENTS)
	$(PIP) install --quiet --no-build-isolation --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) -c "import mmcv.ops, mmseg, helpers" && touch $(STAMP)

# The main job: every notebook, in order, on VOC_ROOT (the demo dataset is created there when no
# VOC2012 exists). Executed copies with their outputs go to build/notebooks/.
run: $(STAMP)
	$(PY) -m helpers.run_notebooks

# Tests: unit tests of helpers (tests/test_assignments.py and tests/test_grading.py prove the
# assignments honest: the release equals `make assign`'s, every graded cell fails unanswered,
# solution full marks, blank 0, a plausible wrong answer less), nbval over every release notebook
# in order (blank answers must not break the lesson), then nbval over the instructor notebooks
# with COURSE_CHECKS=strict (every check passes with the solutions). All in smoke mode on a
# fresh demo dataset under build/smoke/ (a real VOC2012 in data/ is never touched by tests).
SMOKE_ENV := SMOKE=1 VOC_ROOT=build/smoke/VOCdevkit/VOC2012 WORK_DIR=build/smoke/work_dirs/pspnet_voc12
test: $(STAMP) check-outputs lint
	rm -rf build/smoke
	$(SMOKE_ENV) $(VENV_PATH) $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider
	$(SMOKE_ENV) WORK_DIR=build/smoke/work_dirs/source COURSE_CHECKS=strict \
	  $(PY) -m pytest source/voc --nbval-lax --nbval-current-env -p no:cacheprovider

# The student release: badges and Colab cells from pyproject's Repository URL, then nbgrader's
# generate_assignment of source/voc/ copied to notebooks/ (commit both).
assign: $(STAMP)
	$(VENV_PATH) $(PY) -m teacher.assignments assign

# make grade SUBMITTED=DIR OUT=FILE [FEEDBACK=DIR] [CELL_TIMEOUT=s] [NOTEBOOK_TIMEOUT=s]
# DIR/STUDENT/NN_name.ipynb → OUT (CSV student,notebook,score,max_score) + HTML feedback per
# student (FEEDBACK, default feedback/ beside OUT). SMOKE, VOC_ROOT, WORK_DIR reach the notebooks.
CELL_TIMEOUT ?= 600
NOTEBOOK_TIMEOUT ?= 3600
grade: $(STAMP)
	@test -n "$(SUBMITTED)" -a -n "$(OUT)" || { echo "usage: make grade SUBMITTED=DIR OUT=FILE" \
	  "[FEEDBACK=DIR] [CELL_TIMEOUT=600] [NOTEBOOK_TIMEOUT=3600]"; exit 1; }
	$(VENV_PATH) $(PY) -m teacher.grading "$(SUBMITTED)" "$(OUT)" $(if $(FEEDBACK),--feedback "$(FEEDBACK)") \
	  --cell-timeout $(CELL_TIMEOUT) --notebook-timeout $(NOTEBOOK_TIMEOUT)

lint: $(STAMP)
	$(PY) -m ruff check helpers tests notebooks benchmarks source

check-outputs: $(STAMP)
	$(PY) -m helpers.notebook_tools check notebooks
	$(PY) -m helpers.notebook_tools check source/voc

strip: $(STAMP)
	$(PY) -m helpers.notebook_tools strip notebooks
	$(PY) -m helpers.notebook_tools strip source/voc

bench: $(STAMP)
	$(PIP) install --quiet -r requirements-bench.txt
	$(PY) benchmarks/run_all.py

# Colab: the notebooks' install cell runs `helpers.colab` (this target does the same from a shell):
# keeps Colab's torch, numpy and friends, installs only what Colab lacks from requirements.txt
# (no test tools), and mmcv from a cached or hosted wheel, else built once against Colab's torch.
COLAB_PY ?= python3
colab-setup:
	$(COLAB_PY) -m helpers.colab

# mmcv's wheel for an instructor to host: built against WHEEL_PY's torch into build/wheels/,
# named by its key (Python, torch, CUDA/CPU, mmcv). On Colab, after the install cell:
# `!make wheel WHEEL_PY=python3`; students then set MMCV_WHEEL_URL to the folder that hosts it.
WHEEL_PY ?= $(PY)
.PHONY: wheel colab-check
wheel: $(if $(filter $(PY),$(WHEEL_PY)),$(STAMP))
	nice $(WHEEL_PY) -m helpers.mmcv_wheel --out build/wheels

# The Colab path off Colab, on Python 3.12 with torch 2.15.0 (the C++20 case): a stand-in
# google.colab, this repository's HEAD as the course URL, a folder as Drive; every notebook in a
# fresh runtime under SMOKE=1, cold (mmcv built) then warm (wheel from "Drive"). Not in CI: the
# first run downloads several GB and builds mmcv (minutes). Times: build/colab-check/report.json.
PY312 ?= $(call find_python,3.12)
COLAB_BASE := build/colab-check/base
colab-check: $(COLAB_BASE)/.installed
	nice $(COLAB_BASE)/bin/python tests/colab_check.py --base $(COLAB_BASE) --work build/colab-check

$(COLAB_BASE)/.installed: tests/colab_stub/colab_base.txt
	@test -n "$(PY312)" || { echo "colab-check needs Python 3.12: pyenv install 3.12, or" \
	  "make colab-check PY312=/path/to/python3.12"; exit 1; }
	$(PY312) -m venv $(COLAB_BASE)
	$(COLAB_BASE)/bin/python -m pip install -q --upgrade pip
	nice $(COLAB_BASE)/bin/python -m pip install -q -r tests/colab_stub/colab_base.txt
	touch $@

clean-env:
	rm -rf $(VENV)
