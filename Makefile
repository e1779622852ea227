# Two commands do all set-up on a fresh machine (README.md):
#   make smoke   # install into .venv, then run the main job at the smoke budget
#   make test    # install into .venv, then run the tests (what .ci/run calls)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: install smoke test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

smoke: install
	$(PY) -m fhn_automl.search problem_b_s --budget smoke

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
