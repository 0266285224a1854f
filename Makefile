# `make book`: set-up, every chapter at the quick preset, then the Jupyter Book (book/_build/html/index.html).
# `make test`: set-up, then the tests. Both work on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
PRESET ?= quick
# chapters' runs trained in this many processes first (cores shared among them): 2 is about 1.4x faster on 2 cores
WORKERS ?= 2
STAMP  := $(VENV)/.installed

# Datasets: $RANDWEIGHTS_DATA if set; else ../shared/data where it exists (our machines); else data/.
SHARED_DATA := $(abspath ../shared/data)
RANDWEIGHTS_DATA ?= $(if $(wildcard $(SHARED_DATA)/MNIST),$(SHARED_DATA),$(CURDIR)/data)
export RANDWEIGHTS_DATA

# torch and torchvision pinned to the builds on this machine's disk; pyproject.toml accepts a range (Colab).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup book test unit smoke bench bench-all golden fashion-mnist chromium lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile $(TORCH_PINS)
	$(BIN)/pip install --quiet --no-compile -e ".[book,test]"
	touch $@

# Fashion-MNIST from Debian's package, where apt-get can run (root); otherwise a note.
fashion-mnist:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then echo "Fashion-MNIST: /usr/share/datasets/fashion-mnist"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) || echo "could not install dataset-fashion-mnist"; \
	else echo "Fashion-MNIST not installed: see data/README.md"; fi

# Chromium for the browser test of the built book (Debian's package, where apt-get can run as root).
chromium:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "could not install chromium"; \
	else echo "Chromium not installed: the browser test will skip"; fi

# The published bundles (bundles/: paper-scale runs a CPU could afford, the smoke preset) are imported first, each
# record verified; runs already stored are left as they are. The chapters then show them beside their own preset.
book: setup fashion-mnist
	@for b in bundles/*.tar.gz bundles/*.tar bundles/*.zip; do [ -e "$$b" ] || continue; \
	  $(BIN)/randweights bundle import "$$b" || exit 1; done
	$(BIN)/randweights reproduce --preset $(PRESET) --workers $(WORKERS)

# Two passes: every test but those executing the smoke chapters, on two workers (pytest-xdist, one file per worker
# at a time); then the chapters, the book and what reads them, in one process, so they are executed once.
test: setup fashion-mnist chromium
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not smoke_book"
	$(BIN)/python -m pytest -q -m smoke_book

# the unit loop: everything but the notebook, book and package tests (about a minute)
unit: setup
	$(BIN)/python -m pytest -q -m "not slow"

smoke: setup
	$(BIN)/randweights reproduce --preset smoke

# `make bench`: one table, every method's step against the dense step (LeNet-300-100, Conv-4, the small ViT; fp32, bf16),
# the selection-free floors of Edge-Popup and Slot Machines, and the host reads per step (benchmarks/steps.py). `make bench-all` then runs the detailed benchmarks: the precision
# table, worker processes, each method's own measurements.
BENCHMARKS := precision quick_precision workers edge_popup slot_machines laperm empirical_size
bench: setup
	$(BIN)/python benchmarks/steps.py

bench-all: bench
	for f in $(BENCHMARKS); do $(BIN)/python benchmarks/$$f.py || exit 1; done

# The golden fixtures (tests/golden/, what the official code computes on small inputs; tests/test_golden.py compares
# ours with them): OFFICIAL holds checkouts of hidden-networks, slot-machines, Train-by-Reconnect and SiftingFeatures
# (git clone https://github.com/allenai/hidden-networks OFFICIAL/hidden-networks, ...); TF_PYTHON is a Python with
# TensorFlow and tqdm for LaPerm's sync (python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu tqdm).
OFFICIAL  ?= official
TF_PYTHON ?= /tmp/tf/bin/python
golden: setup
	$(BIN)/python tests/golden/generate.py --official $(OFFICIAL) --tf-python $(TF_PYTHON)

# ruff over everything, notebooks included (ruff reads .ipynb), then the import contracts of pyproject.toml
# ([tool.importlinter]: the layers, and the store / training / compact format independent of each other), then
# mypy over the modules of [tool.mypy] files (the public API)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/mypy

clean:
	rm -rf book/_build book/chapters book/figures
