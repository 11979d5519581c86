# pinfold — see README.md. Run `make help` for the targets.

GO        ?= go
BIN       := bin
GOFLAGS   ?=
# pinfold links libseccomp (cgo) and is linked statically, which starts
# faster than a dynamic cgo binary; pinfold-init is pure Go and static.
PINFOLD_LDFLAGS := -s -w -linkmode external -extldflags -static
INIT_LDFLAGS    := -s -w
TAGS            := netgo,osusergo
GO_SOURCES      := $(shell find . -name '*.go' -not -path './.git/*' 2>/dev/null) go.mod go.sum

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install what building and testing need (libseccomp-dev, python3, ...)
	hack/install-deps.sh

.PHONY: build
build: $(BIN)/pinfold $(BIN)/pinfold-init ## build bin/pinfold and bin/pinfold-init

$(BIN)/pinfold: $(GO_SOURCES)
	@mkdir -p $(BIN)
	CGO_ENABLED=1 $(GO) build $(GOFLAGS) -trimpath -tags $(TAGS) -ldflags '$(PINFOLD_LDFLAGS)' -o $@ ./cmd/pinfold

$(BIN)/pinfold-init: $(GO_SOURCES)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -trimpath -ldflags '$(INIT_LDFLAGS)' -o $@ ./cmd/pinfold-init

.PHONY: api
api: ## regenerate the daemon API's Go code from api/**/*.proto (needs protoc; generated code is committed)
	hack/gen-api.sh

.PHONY: demo
demo: ## install deps, build, and run the hello-agent example in the default sandbox
	hack/install-deps.sh
	$(MAKE) build
	$(BIN)/pinfold run --name hello-agent --bind $(CURDIR)/examples/hello-agent:/app -- /usr/bin/python3 /app/agent.py

.PHONY: test
test: ## the whole suite: unit tests and root integration tests on the real kernel
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

.PHONY: test-short
test-short: ## unit tests only (no root needed)
	$(GO) test -count=1 -short ./...

.PHONY: test-vm
test-vm: ## cgroup v2 integration tests inside a pure cgroup-v2 kernel under QEMU
	hack/vmtest-run.sh

.PHONY: bench
bench: build ## start latency beside /bin/true, unshare and bwrap; then the daemon's numbers
	hack/bench.sh
	hack/bench-daemon.sh

.PHONY: bench-ipc
bench-ipc: build ## IPC channels and syscall round trips beside raw kernel baselines, same run
	hack/bench-ipc.sh

.PHONY: fuzz
fuzz: ## run every fuzz target briefly (FUZZTIME=30s each)
	hack/fuzz.sh

.PHONY: lint
lint: ## gofmt, go vet, shellcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	shellcheck hack/*.sh .ci/run

.PHONY: clean
clean: ## remove build outputs
	rm -rf $(BIN)
