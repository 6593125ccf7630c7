# ModelZoo: `make demo` (installs only what the tool needs: Debian libraries and the Swift build)
# and `make test` (also the Python reference environment the tests compare against).
SHELL := /bin/bash
ROOT := $(abspath .)
export ZOO_PYTHON ?= $(ROOT)/.venv/bin/python
export ZOO_VENV ?= $(ROOT)/.venv
export ZOO_FIXTURES ?= $(ROOT)/.cache/fixtures
SWIFT_TEST_FLAGS ?=

.PHONY: setup setup-tool build release fixtures test demo parity fuzz bench man clean

setup:
	@tools/setup.sh

# The tool alone: Debian's libraries, no Python environment.
setup-tool:
	@tools/setup.sh --no-python

build: setup
	swift build

release: setup
	swift build -c release

# Two concurrent jobs (ZOO_FIXTURES_JOBS); `tools/fixtures/generate.sh NAME...` regenerates some.
fixtures: setup
	@tools/fixtures/generate.sh

# zoo vs PyTorch vs ONNX Runtime, side by side (benchmarks/RESULTS.md).
bench: release
	$(ZOO_PYTHON) benchmarks/run.py --batch8 --memory --cpu --repeat 2
	$(ZOO_PYTHON) benchmarks/train.py
	$(ZOO_PYTHON) benchmarks/transfer.py
	$(ZOO_PYTHON) benchmarks/features.py
	$(ZOO_PYTHON) benchmarks/families.py

# The Debian libraries, then tools/test.sh: the Swift build runs while the Python environment installs and the
# fixtures are written; then the tests (an optimised build: TEST_CONFIG=debug for a debug one), the examples and
# the fuzz smoke pass.
export TEST_CONFIG ?= release
export SWIFT_TEST_FLAGS
test:
	@tools/setup.sh --no-venv
	@tools/test.sh

# libFuzzer over every reader (docs/security.md): FUZZ_SECONDS per target (default 600).
FUZZ_SECONDS ?= 600
fuzz: setup fixtures
	FUZZ_SECONDS=$(FUZZ_SECONDS) tools/fuzz.sh

demo: setup-tool
	swift build -c release
	@tools/demo.sh

# Manual pages for zoo and each subcommand (swift-argument-parser's generate-manual plugin) into .build/man.
man: setup-tool
	swift package plugin --allow-writing-to-package-directory generate-manual --multi-page --configuration release
	@rm -rf .build/man && mkdir -p .build/man && cp .build/plugins/GenerateManual/outputs/zoo/*.1 .build/man/
	@echo "man: .build/man ($$(ls .build/man | wc -l) pages; man -l .build/man/zoo.1, or copy them to a man1 folder on your MANPATH)"

clean:
	rm -rf .build .build-fuzz .cache

# Parity with torchvision and Keras for every architecture (docs/parity.md). Generates the full
# fixture set (heavy, cached), runs Tests/ParityTests with ZOO_PARITY=all in release mode, writes the table.
PARITY_RESULTS := $(ROOT)/.cache/parity-results.jsonl
PARITY_GROUPS := parity_torch parity_keras parity_torch_arch parity_keras_arch parity_keras_arch_efficientnet \
	parity_torch_full parity_keras_full
parity: setup
	@# Only the fixtures the parity tests read (ParityCatalog's groups), two generators at a time.
	tools/fixtures/generate.sh $(PARITY_GROUPS)
	swift build -c release --build-tests
	@mkdir -p .cache; rm -f $(PARITY_RESULTS)
	ZOO_PARITY=all ZOO_PARITY_RESULTS=$(PARITY_RESULTS) swift test -c release --skip-build --filter "^ParityTests\." ; \
	  status=$$?; $(ZOO_PYTHON) tools/parity_report.py $(PARITY_RESULTS) docs/parity.md $(ZOO_FIXTURES) --status $$status; exit $$status
