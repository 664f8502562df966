# The README's two fresh-machine commands:
#   make demo   installs everything and runs the offline end-to-end job (one training seed;
#               `mumur demo --out out/demo` runs the study's three, as docs/results/demo.md)
#   make test   installs everything, checks the import layers (lint-imports), runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO_OUT ?= out/demo

.PHONY: install install-test demo test test-openclip

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch is pinned to the CPU build that lies on local disk; the package metadata says torch>=2.3
# so GPU machines keep their own build.
install: $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	# open_clip's wheel carries the real CLIP BPE vocabulary; installed without deps so it does not
	# pull a CUDA torchvision (its model factory then needs `pip install torchvision` to import).
	$(PIP) install -q --no-deps open_clip_torch multilingual-clip

# The scale extra (ray[data]) too: the Ray engine's tests run in the default suite.
install-test: install
	$(PIP) install -q -e ".[test,scale]"

demo: install
	$(VENV)/bin/mumur demo --out $(DEMO_OUT) --seeds 0

# lint-imports checks the layer contracts of pyproject.toml ([tool.importlinter]) first.
test: install-test
	$(VENV)/bin/lint-imports --no-logo
	$(VENV)/bin/python -m pytest

# open_clip's model factory imports torchvision, and no torchvision imports beside torch 2.13.0
# (the main install). The open_clip backbone tests (NLLB-CLIP, XLM-R CLIP: `-m openclip`) run in a
# second environment with a matching pair that lies on this kind of machine's disk (x86_64:
# torch 2.14.1 + torchvision 0.29.1, a CUDA build of about 5.5 GB; the CPU runs it). `.ci/run`
# runs this target after `make test` and prints how long it took. Only pytest is added to
# mumur's own dependencies: these tests need no other test tool.
# MUMUR_REQUIRE_OPENCLIP=1 turns "open_clip does not import" into a failure instead of a skip.
OC_VENV ?= .venv-openclip
test-openclip:
	test -x $(OC_VENV)/bin/python || python3 -m venv $(OC_VENV)
	$(OC_VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(OC_VENV)/bin/pip install -q -e . "pytest>=8"
	$(OC_VENV)/bin/pip install -q --no-deps open_clip_torch
	MUMUR_REQUIRE_OPENCLIP=1 $(OC_VENV)/bin/python -m pytest -m openclip tests/test_open_clip_backbones.py
