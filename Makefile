# The two commands of the README: `make demo` (the main job on the built-in competition) and
# `make test`. Both create .venv on first use and reinstall only when pyproject.toml changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kit-installed

.PHONY: install demo test bench cifar10 clean-store

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Train two recipes 5-fold on `digits`, blend them every way, write and score the submission.
demo: install
	$(BIN)/kit train recipes/digits/vgg_small.yaml recipes/digits/resnet_small.yaml
	$(BIN)/kit blend --method all --out submissions/digits-demo.csv
	$(BIN)/kit score submissions/digits-demo.csv

test: install
	$(BIN)/python -m pytest

clean-store:
	rm -rf store submissions/*.csv submissions/*.report
