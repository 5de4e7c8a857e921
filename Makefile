# The two commands of the README: `make demo` (the main job on the built-in competition) and
# `make test`. Both create .venv on first use and reinstall only when pyproject.toml changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kit-installed

.PHONY: install demo test bench gpu-check cifar10 clean-store

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[dev,weights,tune,tensorboard,ray]'
	touch $(STAMP)

install: $(STAMP)

# Train two recipes 5-fold on `digits`, blend them every way, write and score the submission.
demo: install
	$(BIN)/kit train recipes/digits/vgg_small.yaml recipes/digits/resnet_small.yaml
	$(BIN)/kit blend --method all --out submissions/digits-demo.csv
	$(BIN)/kit score submissions/digits-demo.csv

test: install
	$(BIN)/python -m pytest

# CIFAR-10 as Kaggle laid it out, from the shared archive: unpacked into data/cifar10 (ignored by
# git), then decoded once into kit's image cache (data/cifar10/.kit-cache) with a progress bar.
CIFAR_ARCHIVE ?= ../shared/data/cifar10.tar.gz

cifar10: data/cifar10/trainLabels.csv install
	$(BIN)/kit prepare recipes/cifar10/competition.yaml

data/cifar10/trainLabels.csv:
	@test -f $(CIFAR_ARCHIVE) || { echo "$(CIFAR_ARCHIVE): no such file (make cifar10 CIFAR_ARCHIVE=path/to/cifar10.tar.gz)"; exit 2; }
	mkdir -p data
	tar xzf $(CIFAR_ARCHIVE) -C data
	touch $@

# kit's training and inference loops against a hand-written PyTorch loop on CIFAR-10 (docs/performance.md)
bench: cifar10
	$(BIN)/python bench/throughput.py

# On a machine with a GPU, in at most 8 minutes: the CUDA tests, both benchmarks on CUDA and airbench94's
# fold 0, as one table written to $$OUT or bench/results/ (docs/performance.md); exit 2 without CUDA
gpu-check: cifar10
	$(BIN)/python bench/gpu_check.py

clean-store:
	rm -rf store submissions/*.csv submissions/*.report
