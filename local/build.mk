# Targets of the local runtime, for the root Makefile to include:
#   include local/build.mk
# `local-build` builds into $(BIN) (default bin/): the OpenFaaS gateway from
# its own module outside the workspace, the provider, optio-up, optio-noop and
# the five functions.

GO  ?= go
BIN ?= $(CURDIR)/bin

LOCAL_CMDS := optio-provider optio-up optio-noop optio-run optio-stop optio-status optio-schedule optio-process

.PHONY: local-build local-gateway

local-build: local-gateway ## build the local runtime into bin/
	$(GO) build -o $(BIN)/ $(addprefix optio.dev/local/cmd/,$(LOCAL_CMDS))

local-gateway: ## build the OpenFaaS gateway (its own module, GOWORK=off)
	@mkdir -p $(BIN)
	cd local/gateway && GOWORK=off $(GO) build -o $(BIN)/gateway github.com/openfaas/faas/gateway
