# ctpheno — two-command setup: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# pytest-xdist processes for `make test` (a module's tests stay together on one worker: --dist loadfile)
TEST_WORKERS ?= 2
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-8)

.PHONY: venv demo test acceptance bench chromium clean docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first: 2.13.0 is a CPU build on this machine's disk; an open range would pull CUDA.
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[deep,cluster,s3,export,idc,umap,test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: venv
	@start=$$(date +%s); \
	$(VENV)/bin/ctpheno run --config config/demo.yaml; rc=$$?; \
	echo "demo finished in $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

# Debian's chromium renders the HTML report in a test; installed here when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; the report-rendering test will fail"; }

test: venv chromium
	set -o pipefail; $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# the 60-subject synthetic acceptance scoring (cluster ARI, FEV1 R2 / oracle, GOLD): ~6 min on 2 cores
acceptance: venv
	$(PY) -m pytest -q -m acceptance tests

bench: venv
	$(PIP) install -q -e ".[pretrained]"
	$(PY) benchmarks/run_all.py --out benchmarks/out --results docs/results.md

clean:
	rm -rf work benchmarks/out .pytest_cache
