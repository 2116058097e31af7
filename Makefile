# Two commands for a newcomer:   make lab   (set up and open the course)   make test   (run the tests)
#
# Students:     make lab             JupyterLab on your own copy of the course (my-work/), no grading tools
# Instructors:  make setup           adds nbgrader and the test tools (the `dev` extra); then make lab-instructor,
#               make release, make test; make test-latest checks the newest releases of every dependency.
# make lab / lab-instructor options: PORT=8899 TOKEN=secret LAB_ARGS=--no-browser
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# instructor / developer install: -e ".[dev]"; student install: -e ".[lab]" (no nbgrader)
STAMP     := $(VENV)/.course-installed
LAB_STAMP := $(VENV)/.course-lab-installed
WORK   ?= my-work
LATEST_VENV ?= .venv-latest
FIRST_LECTURE := lectures/L00_learning_recipe.ipynb

PORT     ?=
TOKEN    ?=
LAB_ARGS ?=
# Full mode and real downloads unless the caller exported COURSE_FAST / COURSE_OFFLINE: nothing here sets them.
JUPYTER_LAB = $(VENV)/bin/jupyter lab \
	$(if $(PORT),--ServerApp.port=$(PORT) --ServerApp.port_retries=0) \
	$(if $(TOKEN),--IdentityProvider.token=$(TOKEN)) \
	$(if $(filter 0,$(shell id -u)),--allow-root) \
	--LabApp.default_url=/lab/tree/$(FIRST_LECTURE)

.PHONY: lab lab-instructor test lint format test-latest setup lab-setup lock release student-dist clean-venv grade feedback grades

# An environment that already has the instructor install keeps it (and keeps it up to date);
# otherwise `make lab` installs only what students need.
lab: $(if $(wildcard $(STAMP)),$(STAMP),$(LAB_STAMP))  ## set up (first time: a few minutes), copy the course into my-work/ and open it
	$(PY) -m tools.workspace $(WORK)
	$(JUPYTER_LAB) --ServerApp.root_dir=$(WORK) $(LAB_ARGS)

lab-instructor: setup                ## JupyterLab on the repository itself (lectures/, solutions/), nbgrader's Formgrader included
	$(JUPYTER_LAB) $(LAB_ARGS)

test: setup                          ## run every test, notebooks included, in fast offline mode
	COURSE_FAST=1 COURSE_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: setup                          ## ruff: lint and formatting check of code and notebooks (CI runs this)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup                        ## ruff: fix what can be fixed safely and format code and notebooks
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

.PHONY: site
# Reuses the notebooks executed by `make test` (test-artifacts/executed/); runs the tests of any lecture without a
# fresh copy first. Options: SITE_ARGS="--out DIR" or SITE_ARGS="--missing fail". Publishing: .github/workflows/pages.yml
site: setup                          ## the course website in build/site/ (open build/site/index.html)
	$(PY) -m book.build $(SITE_ARGS)

setup: $(STAMP)

lab-setup: $(LAB_STAMP)

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -c .ci/constraints.txt -e ".[dev]"
	touch $(STAMP)

$(LAB_STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -c .ci/constraints.txt -e ".[lab]"
	touch $(LAB_STAMP)

release: setup                       ## regenerate the student copies in assignments/ from solutions/
	$(PY) -m tools.release

# Instructors' grading cycle (docs/instructors.md): A=assignment, SUBMISSIONS=folder of downloaded hand-ins,
# MODE=full (full data and training: a machine with a CUDA GPU only), WORKERS=N, FORCE=1 (grade: regrade unchanged
# submissions; feedback: even while written answers are open).
grade: setup                         ## collect, check, repair, autograde (sandbox) and report: make grade A=A1_backprop SUBMISSIONS=dir/
	@test -n "$(A)" || { echo "Say which assignment: make grade A=A1_backprop [SUBMISSIONS=~/Downloads/a1] [MODE=full]"; exit 2; }
	$(PY) -m tools.grading grade $(A) $(SUBMISSIONS) $(if $(MODE),--mode $(MODE)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(FORCE),--force)

feedback: setup                      ## feedback HTML per student, once every written answer has a score: make feedback A=A1_backprop [FORCE=1]
	@test -n "$(A)" || { echo "Say which assignment: make feedback A=A1_backprop [FORCE=1]"; exit 2; }
	$(PY) -m tools.grading feedback $(A) $(if $(FORCE),--force)

grades: setup                        ## export the grades of every assignment handed in to nbgrader_work/grades.csv
	$(PY) -m tools.grading grades

student-dist: setup                  ## write the student distribution into DEST (a clone of the student repository)
	@test -n "$(DEST)" || { echo "Say where: make student-dist DEST=../deep-learning-course [ASSIGNMENTS='A1_backprop A2_convolution']"; exit 2; }
	$(PY) -m tools.distribute $(DEST) $(if $(ASSIGNMENTS),--assignments $(ASSIGNMENTS))

lock: setup                          ## refresh the exact CI versions after changing dependencies
	$(PY) -m pip freeze --exclude-editable | grep -v '^course-utils' > .ci/constraints.tmp
	{ head -3 .ci/constraints.txt; cat .ci/constraints.tmp; } > .ci/constraints.new && rm .ci/constraints.tmp
	mv .ci/constraints.new .ci/constraints.txt

# Not part of .ci/run: shows, before students meet it on Colab, what a new torch/numpy/nbgrader release breaks.
# A fresh environment every time, no .ci/constraints.txt: pip picks the newest release of everything.
test-latest:                         ## the fast-mode suite against the newest release of every dependency
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --progress-bar off -e ".[dev]"
	$(LATEST_VENV)/bin/python -m pip freeze --exclude-editable > $(LATEST_VENV)/versions.txt
	@echo "Testing with the versions in $(LATEST_VENV)/versions.txt (CI's are in .ci/constraints.txt)."
	COURSE_FAST=1 COURSE_OFFLINE=1 $(LATEST_VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV) $(LATEST_VENV)
