# vmtrust — build, test, fuzz, demo.
#
#   make setup   install what the project needs (Debian packages, Go modules; as root)
#   make fixtures  build the test disk images once (scripts/fixtures.sh; as root)
#   make build   bin/vmtrust and bin/vmtrust-hook
#   make test    setup, go vet, a short fuzz run of every fuzz target, then go test
#   make fuzz    only the fuzz run (FUZZTIME=30s make fuzz, FUZZ=FuzzParse make fuzz)
#   make demo    setup, build, then the end-to-end demo (scripts/demo.sh)
#   make bench   bench/*.sh and the Go benchmarks
#   make clean   remove bin/ and the demo's work directory
#
# CI runs .ci/run, which runs 'make test'.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-print-directory

REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))

# Go lives in /usr/local/go on these machines; make sure it is found.
export PATH := /usr/local/go/bin:$(PATH)
# Third-party test data (cloudkeeper sample lists, ...) is kept outside the
# repository, beside it. Tests skip without it, or fail when CI is set.
export VMTRUST_TESTDATA ?= $(abspath $(REPO)/../shared/testdata)
export VMTRUST_DEMO_DIR ?= /tmp/vmtrust-demo

GO ?= go
BIN := bin/vmtrust
# go test: the whole run must finish within this.
TEST_TIMEOUT ?= 10m
GOTESTFLAGS ?=
# Fuzzing: time per target; FUZZ selects targets by regexp (default: all).
FUZZTIME ?= 10s
FUZZ ?= .
# Each new interesting input is minimised before fuzzing goes on; Go's default
# (60s per input) spends a short run almost entirely minimising large seeds.
# A bounded number of attempts keeps the time for finding new inputs.
FUZZMINIMIZE ?= 200x
# make test only: total seconds of fuzzing allowed. When every target at
# FUZZTIME would exceed it, each target gets FUZZ_BUDGET / targets (at least
# 3s). 0 means no cap (make fuzz uses 0).
FUZZ_BUDGET ?= 150
BENCHFLAGS ?= -benchmem

.PHONY: help setup fixtures build test vet gotest fuzz demo bench clean

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

setup:
	@$(REPO)/scripts/setup.sh

# Real disk images for the image-inspection tests, cached outside the
# repository under $VMTRUST_FIXTURES (default /var/cache/vmtrust/fixtures) and
# keyed by the script's sha256; a no-op (< 1 s) when they are built.
fixtures:
	@$(REPO)/scripts/fixtures.sh

build:
	$(GO) build -o $(BIN) ./cmd/vmtrust
	$(GO) build -o $(BIN)-hook ./cmd/vmtrust-hook

# The fuzz stage. Targets are discovered with 'go test -list ^Fuzz' (the
# output lists each package's fuzz targets, then the package's "ok" line), and
# each runs alone: go test -run=^$$ -fuzz=^NAME$$ -fuzztime=T PACKAGE.
# Every target runs even when one fails; the stage fails at the end. A target
# that fails with "context deadline exceeded" and writes no failing input is
# retried (up to five tries): that is a known race in Go's fuzzing coordinator on a loaded
# machine (golang/go#75804), not a finding.
define FUZZ_STAGE
echo "== fuzz: discovering fuzz targets (go test -list '^Fuzz' ./...)"; \
list=$$($(GO) test -list '^Fuzz' ./...) || { printf '%s\n' "$$list"; echo "fuzz: listing the fuzz targets failed" >&2; exit 1; }; \
mapfile -t targets < <(printf '%s\n' "$$list" | awk '/^Fuzz[A-Za-z0-9_]*$$/ { names[n++] = $$0; next } /^ok[ \t]/ { for (i = 0; i < n; i++) print $$2 " " names[i]; n = 0 }' | awk -v re='$(FUZZ)' '$$2 ~ re'); \
count=$${#targets[@]}; \
if [ "$$count" -eq 0 ]; then echo "fuzz: no fuzz targets match '$(FUZZ)'"; exit 0; fi; \
fuzztime='$(FUZZTIME)'; budget='$(1)'; \
if [ "$$budget" -gt 0 ] && [[ $$fuzztime =~ ^([0-9]+)s$$ ]] && [ $$(( BASH_REMATCH[1] * count )) -gt "$$budget" ]; then \
	per=$$(( budget / count )); [ "$$per" -ge 3 ] || per=3; \
	echo "fuzz: $$count targets x $$fuzztime exceeds the $${budget}s budget: $${per}s each (make fuzz runs the full FUZZTIME)"; \
	fuzztime=$${per}s; \
fi; \
echo "fuzz: $$count targets, $$fuzztime each"; \
log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
crashers() { { find "$$1" -type f 2>/dev/null || true; } | wc -l; }; \
fuzz_one() { $(GO) test -run='^$$' -fuzz="^$$2\$$" -fuzztime="$$fuzztime" -fuzzminimizetime=$(FUZZMINIMIZE) "$$1" 2>&1 | tee "$$log"; }; \
failed=(); start=$$SECONDS; \
for t in "$${targets[@]}"; do \
	pkg=$${t% *}; name=$${t#* }; \
	corpus=$$($(GO) list -f '{{.Dir}}' "$$pkg")/testdata/fuzz/$$name; before=$$(crashers "$$corpus"); \
	echo "== fuzz: $$name in $$pkg"; \
	ok=no; \
	for try in 1 2 3 4 5; do \
		if fuzz_one "$$pkg" "$$name"; then ok=yes; break; fi; \
		[ "$$(crashers "$$corpus")" -eq "$$before" ] && grep -q 'context deadline exceeded' "$$log" || break; \
		echo "fuzz: $$name hit 'context deadline exceeded' without a failing input (try $$try of 5): Go's fuzzing coordinator can miss its own -fuzztime deadline on a loaded machine (golang/go#75804); retrying"; \
	done; \
	[ "$$ok" = yes ] && continue; \
	failed+=("$$name ($$pkg)"); \
done; \
echo "== fuzz: $$count targets in $$(( SECONDS - start ))s"; \
if [ "$${#failed[@]}" -gt 0 ]; then \
	echo "fuzz: FAILED: $${failed[*]}" >&2; \
	echo "fuzz: a crashing input found by fuzzing is saved in the package's testdata/fuzz/NAME/ directory; go test -run=NAME/ENTRY PACKAGE reruns it" >&2; \
	exit 1; \
fi
endef

vet:
	@echo "== go vet ./..."
	@$(GO) vet ./...

gotest:
	@[ -d "$(VMTRUST_TESTDATA)" ] || echo "WARNING: VMTRUST_TESTDATA=$(VMTRUST_TESTDATA) does not exist: tests that need third-party data will skip (or fail when CI is set); set VMTRUST_TESTDATA to the shared testdata folder"
	@echo "== go test -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) ./... (VMTRUST_TESTDATA=$(VMTRUST_TESTDATA))"
	@$(GO) test -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) ./...

# The steps run in this order even under make -j.
# Fuzzing comes before the tests, so that go test's summary closes the run.
test:
	@$(MAKE) setup
	@$(MAKE) fixtures
	@$(MAKE) vet
	@$(call FUZZ_STAGE,$(FUZZ_BUDGET))
	@$(MAKE) gotest

fuzz:
	@$(call FUZZ_STAGE,0)

demo:
	@$(MAKE) setup
	@$(MAKE) fixtures
	@$(MAKE) build
	@$(REPO)/scripts/demo.sh

bench:
	@$(MAKE) setup
	@$(MAKE) build
	@shopt -s nullglob; for f in bench/*.sh; do echo "== bench: $$f"; bash "$$f"; done
	@echo "== go test -run='^$$' -bench=. $(BENCHFLAGS) ./..."
	@$(GO) test -run='^$$' -bench=. $(BENCHFLAGS) ./...

clean:
	rm -rf bin
	@if [ -f "$(VMTRUST_DEMO_DIR)/.vmtrust-demo" ]; then echo "rm -rf $(VMTRUST_DEMO_DIR)"; rm -rf -- "$(VMTRUST_DEMO_DIR)"; fi
