# Every target installs into .venv first, so a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-long bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/deflation-watch demo

# pytest exits 5 when it collects nothing; that is not a failure of the code under test.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not long" -q; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-long: $(STAMP)
	$(BIN)/python -m pytest -m long -q; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

# Speed and size goals (benchmarks/): a table on screen and bench-results.json.
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
