# The README's two fresh-machine commands:
#   make demo   installs everything and runs the offline end-to-end job
#   make test   installs everything, checks the import layers (lint-imports), runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO_OUT ?= out/demo

.PHONY: install install-test demo test

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

install-test: install
	$(PIP) install -q -e ".[test]"

demo: install
	$(VENV)/bin/mumur demo --out $(DEMO_OUT)

# lint-imports checks the layer contracts of pyproject.toml ([tool.importlinter]) first.
test: install-test
	$(VENV)/bin/lint-imports --no-logo
	$(VENV)/bin/python -m pytest
