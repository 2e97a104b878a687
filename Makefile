# Playbook Studio. The README's two commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin

.PHONY: run test setup build vet fmt-check unit extension-test web-test image e2e fuzz bench clean

run: build ## start the dev provider and the gateway on http://localhost:8080
	@scripts/run-local.sh

test: setup build fmt-check vet extension-test web-test image unit e2e ## everything CI runs

setup:
	@scripts/setup.sh test

build:
	@scripts/setup.sh run
	@scripts/build-web.sh
	@$(GO) build -o $(BIN)/gateway ./cmd/gateway
	@$(GO) build -o $(BIN)/devidp ./cmd/devidp

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	@$(GO) vet ./...

# Fuzz targets' seed corpora run as ordinary tests here; the Docker
# runtime's tests include one with the real workspace image.
unit:
	@PBS_TEST_REAL_IMAGE=1 PBS_REQUIRE_EXTENSION=1 $(GO) test -count=1 ./...

extension-test:
	@scripts/build-extension.sh
	@cd extensions/playbook-agent && npm test --silent

web-test:
	@scripts/build-web.sh
	@cd web && npm run check --silent && npm test --silent

# The workspace image, built offline from Debian packages (images/).
image:
	@scripts/build-extension.sh
	@REQUIRE_EXTENSION=1 images/build-offline.sh

e2e: build
	@cd e2e && node --test --test-reporter=spec --test-concurrency=1 tests/

# Explore each fuzz target for FUZZTIME (default 20s).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# Proxy, workspace and lock figures on this machine (cmd/bench): one
# `name<TAB>value<TAB>unit[<TAB>ratio]` line per figure on stdout; every
# proxy figure for both IDE proxy engines (proxy_* relay, stdproxy_*
# stdlib), each against nginx in the same run.
# BENCH_FLAGS passes options, e.g. BENCH_FLAGS='-only proxy -duration 9s'.
bench: build
	@$(GO) run ./cmd/bench $(BENCH_FLAGS)

clean:
	rm -rf $(BIN) e2e/output web/static/assets/vendor/mermaid.js
