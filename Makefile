# Set-up is part of every target: a fresh clone needs only `make train` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: train test test-envs lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,brax,gif,wandb,optuna]'
	touch $@ $(VENV)/.installed

train: $(VENV)/.installed
	$(BIN)/purejaxppo train configs/CartPole-v1.yaml

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	JAX_PLATFORMS=cpu $(BIN)/python -m pytest -q

# The suites with an adapter (docs/envs.md); kept out of `make test`: together they pull
# ~435 MB and Craftax's tests spend a minute compiling.
test-envs: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[test,navix,xminigrid,craftax,jumanji]'
	JAX_PLATFORMS=cpu $(BIN)/python -m pytest -q tests/test_suites.py tests/test_memory.py -k 'test_suites or every_shipped_run_config'

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.installed
	$(BIN)/purejaxppo bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
