# The dashboard's browser tests and the relay's build, for the root Makefile:
#   make -f web/browser.mk browser-test BIN=$(BIN)
# browser-test needs bin/ built (make build: optio-up, optio-relay, the
# gateway, the functions, ...), Node.js >= 20 with npm, and Debian's chromium
# at $(CHROMIUM). It fails, never skips, when one is missing. It installs
# playwright-core from browser/package-lock.json (npm ci; no browser is ever
# downloaded), then runs browser/test with node's test runner: the tests
# start the whole stack with bin/optio-up on their own Redis prefix and
# RabbitMQ queue, drive the page in headless Chromium, and leave screenshots,
# logs and latency.json in test-artifacts/browser/.

GO       ?= go
NODE     ?= node
NPM      ?= npm
BIN      ?= $(CURDIR)/bin
CHROMIUM ?= /usr/bin/chromium

.PHONY: web-build browser-deps browser-test

web-build: ## build the relay (with the dashboard embedded) into $(BIN)/optio-relay
	$(GO) build -o $(BIN)/optio-relay ./web/cmd/optio-relay

browser-deps: ## check node and chromium, install playwright-core from the lock file
	@command -v $(NODE) >/dev/null 2>&1 || { echo "browser tests: node is missing (install Node.js >= 20 and npm)"; exit 1; }
	@command -v $(NPM) >/dev/null 2>&1 || { echo "browser tests: npm is missing (install npm)"; exit 1; }
	@$(NODE) -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || \
	  { echo "browser tests: Node.js >= 20 is needed by playwright-core, found $$($(NODE) --version)"; exit 1; }
	@[ -x "$(CHROMIUM)" ] || { echo "browser tests: $(CHROMIUM) is missing (apt-get install chromium)"; exit 1; }
	cd browser && $(NPM) ci --no-audit --no-fund --loglevel=error

browser-test: browser-deps ## the dashboard in headless Chromium against the whole stack
	@for b in optio-up optio-relay gateway; do \
	  [ -x "$(BIN)/$$b" ] || { echo "browser tests: $(BIN)/$$b is missing: run make build"; exit 1; }; \
	done
	cd browser && OPTIO_BIN_DIR="$(BIN)" OPTIO_CHROMIUM="$(CHROMIUM)" $(NPM) test
