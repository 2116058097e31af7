# Two commands for a newcomer:   make lab   (set up and open the course)   make test   (run the tests)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.course-installed

.PHONY: lab test setup lock release clean-venv

lab: setup                           ## set up (first time: a few minutes) and open the course in JupyterLab
	$(VENV)/bin/jupyter lab README.md lectures/L00_learning_recipe.ipynb

test: setup                          ## run every test, notebooks included, in fast offline mode
	COURSE_FAST=1 COURSE_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -c .ci/constraints.txt -e ".[dev]"
	touch $(STAMP)

release: setup                       ## regenerate the student copies in assignments/ from solutions/
	$(PY) -m tools.release

lock: setup                          ## refresh the exact CI versions after changing dependencies
	$(PY) -m pip freeze --exclude-editable | grep -v '^course-utils' > .ci/constraints.tmp
	{ head -3 .ci/constraints.txt; cat .ci/constraints.tmp; } > .ci/constraints.new && rm .ci/constraints.tmp
	mv .ci/constraints.new .ci/constraints.txt

clean-venv:
	rm -rf $(VENV)
