# Optio. `make help` lists the targets. Targets that act on Go code loop over
# every module of the workspace (go list -m), so a new module is built,
# vetted and tested without editing this file.

SHELL   := /bin/bash
GO      ?= go
BIN     := $(CURDIR)/bin
MODULES := $(shell $(GO) list -m -f '{{.Dir}}' 2>/dev/null)
# Every main package of the workspace; each lands in bin/ under its own name.
MAINS   := $(shell $(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' $(addsuffix /...,$(MODULES)) 2>/dev/null)
FUZZTIME ?= 10s

.PHONY: help build up services test vet unit fuzz e2e browser bench clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

build: ## build every binary into bin/ (the OpenFaaS gateway from its own module, outside the workspace)
	@mkdir -p $(BIN)
	@# Every binary is named optio-<name>, whatever its package directory is called.
	@for pkg in $(MAINS); do name=$$(basename $$pkg); name=optio-$${name#optio-}; \
	  echo "go build -o bin/$$name $$pkg"; $(GO) build -o $(BIN)/$$name $$pkg || exit 1; done
	cd local/gateway && GOWORK=off $(GO) build -o $(BIN)/gateway github.com/openfaas/faas/gateway

up: services build ## run the whole product here in the foreground; Ctrl-C stops all of it
	$(BIN)/optio-up

services: ## start (or install) Redis, RabbitMQ, Prometheus and the browser the tests use
	bash scripts/services.sh

test: services build vet unit fuzz e2e browser ## every test: unit, integration, fuzz seeds, end to end, browser

vet: ## gofmt check and go vet over every module
	@unformatted=$$(gofmt -l $(MODULES)); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

unit: ## unit and integration tests of every module (real Redis and RabbitMQ), with -race
	@for m in $(MODULES); do \
	  [ "$$(basename $$m)" = e2e ] && continue; \
	  echo "== $$m"; (cd $$m && $(GO) test -race -count=1 ./...) || exit 1; \
	done

fuzz: ## a short run of every fuzz test (FUZZTIME each; seeds run in unit too)
	@for m in $(MODULES); do \
	  for pkg in $$(cd $$m && $(GO) list ./...); do \
	    dir=$$(cd $$m && $(GO) list -f '{{.Dir}}' $$pkg); \
	    for f in $$(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)' $$dir/*_test.go 2>/dev/null | cut -d' ' -f2); do \
	      echo "== fuzz $$pkg $$f"; (cd $$dir && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) .) || exit 1; \
	    done; \
	  done; \
	done

e2e: build ## the end-to-end suite: the whole stack through the real gateway
	cd e2e && OPTIO_BIN_DIR=$(BIN) $(GO) test -race -count=1 -timeout 15m -v ./... 2>&1 | grep -vE '^=== (RUN|PAUSE|CONT)'; exit $${PIPESTATUS[0]}

browser: build ## dashboard tests in headless Chromium (playwright-core)
	@if [ -f web/browser.mk ]; then $(MAKE) -f web/browser.mk browser-test BIN=$(BIN); else echo "web/browser.mk missing"; exit 1; fi

# The Go benchmarks of the hot functions: the release planner, the Redis
# script that counts a job, the document encoding and write, the relay's
# fan-out, the connector's consume loop and the provider's proxy.
GOBENCH := optio/release optio/run optio/index web/relay connector local/provider
BENCHTIME ?= 2s

bench: services build ## the whole product side by side with its floors and Asynq (bench/README.md), then the Go benchmarks
	@mkdir -p bench/results
	cd bench && OPTIO_BIN_DIR=$(BIN) BENCH_ROOT=$(CURDIR) $(GO) run ./cmd/optio-bench
	@for d in $(GOBENCH); do echo "== go test -bench $$d"; \
	  (cd $$d && $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count 1 .) || exit 1; done

clean: ## remove built binaries and local state
	rm -rf $(BIN) .optio test-artifacts
