# Medimint: `make run` starts the gateway, `make test` runs every test with
# its real dependencies installed. `make help` lists the rest.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO          ?= go
BIN         := bin/medimint
TOOLS       := $(CURDIR)/.tools
STATICCHECK := $(TOOLS)/staticcheck
# staticcheck 2026.2.2; 2025.1.x predates Go 1.26.
STATICCHECK_VERSION := v0.8.2
FUZZTIME    ?= 30s

VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: help portal build run test lint bench bench-go fuzz conformance clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

portal: ## build the portal (portal/dist/app, embedded by the Go build) when npm is installed
	if command -v npm >/dev/null; then cd portal && npm ci --no-audit --no-fund && npm run build; fi

build: portal ## build bin/medimint (with the portal embedded)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/medimint

# The first start prints the bootstrap admin's sign-in and an API key.
run: build ## build, make sure Postgres runs, and serve (Ctrl-C stops)
	@url="$${DATABASE_URL:-$$(scripts/ensure-postgres.sh medimint)}"; \
	DATABASE_URL="$$url" exec $(BIN) serve

# The portal is built first so that its end-to-end test sees the embedded
# build.
test: ## install test dependencies, then run every test (race detector on)
	scripts/test-deps.sh
	$(MAKE) portal
	pg="$${MEDIMINT_TEST_PG:-$$(scripts/ensure-postgres.sh)}"; \
	MEDIMINT_REQUIRE_TOOLS=1 MEDIMINT_TEST_PG="$$pg" $(GO) test -race -count=1 ./...
	if [ -f portal/package.json ]; then cd portal && npm test; fi

lint: $(STATICCHECK) ## gofmt, go vet and staticcheck
	@out="$$(find . -name '*.go' -not -path '*/node_modules/*' -not -path './var/*' -not -path './.tools/*' -print0 | xargs -0 gofmt -l)"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

bench: ## Medimint vs Orthanc and storescp on one corpus, plus the Go benchmarks -> bench/results/DATE.{md,png}
	scripts/bench-system.sh

bench-go: ## only the Go benchmarks
	pg="$${MEDIMINT_TEST_PG:-$$(scripts/ensure-postgres.sh)}"; \
	MEDIMINT_TEST_PG="$$pg" $(GO) test -run='^$$' -bench=. -benchmem ./...

fuzz: ## run each Fuzz target for FUZZTIME (default 30s)
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Slower than `make test`: builds Kubo (~5 min once), runs Orthanc, and pins
# a 7.9 GB DAG. Ends with the suite's "N passed, N failed" line.
conformance: ## conformance suite against real peers (dcmtk, Orthanc, Kubo, dicomweb-client)
	scripts/test-deps.sh
	scripts/conformance-deps.sh
	scripts/conformance-kubo.sh
	$(MAKE) portal
	pg="$${MEDIMINT_TEST_PG:-$$(scripts/ensure-postgres.sh)}"; \
	MEDIMINT_REQUIRE_TOOLS=1 MEDIMINT_TEST_PG="$$pg" $(GO) test -count=1 -timeout 30m -tags conformance ./mint/pinning/; \
	MEDIMINT_REQUIRE_TOOLS=1 MEDIMINT_TEST_PG="$$pg" $(GO) test -count=1 -v -timeout 30m -tags conformance ./conformance/...

clean: ## remove build outputs (keeps ./var, the local database and keys)
	rm -rf bin
