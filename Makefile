# taskgen — typed Celery for Go. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
PKGS  := ./...
FUZZTIME ?= 20000x

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: generate ## run the sign-up scenario on the in-process broker (nothing to install)
	$(GO) run ./example/cmd/demo $(DEMO_FLAGS)

.PHONY: generate
generate: ## run go generate (taskgen) on the example and regenerate the stubs
	$(GO) generate ./...

.PHONY: check-generate
check-generate: ## fail when go generate would change committed files
	$(GO) run ./cmd/taskgen -check ./...

.PHONY: fmt-check
fmt-check: ## fail when a file is not gofmt'd
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt'd:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet (also the reliability suite, behind its build tag)
	$(GO) vet $(PKGS)
	$(GO) vet -tags reliability ./reliability/

.PHONY: staticcheck
staticcheck: ## staticcheck (honnef.co/go/tools, pinned by go.mod's tool directive)
	$(GO) tool staticcheck $(PKGS)
	$(GO) tool staticcheck -tags reliability ./reliability/

.PHONY: lint
lint: fmt-check vet staticcheck check-generate ## every static check: gofmt, go vet, staticcheck, generated code up to date

.PHONY: test
test: ## install and start redis-server and rabbitmq-server on loopback, run every check and test, stop them
	TESTENV_CHROMIUM=1 bash scripts/testenv.sh run -- $(MAKE) --no-print-directory test-inner

.PHONY: test-inner
test-inner: lint taskvet ## the checks and tests, against servers already described by TASKGEN_* variables
	$(GO) test -race -count=1 -timeout 12m $(PKGS)
	$(MAKE) --no-print-directory fuzz FUZZTIME=20000x
	$(MAKE) --no-print-directory demo DEMO_FLAGS="-timeout 30s" > /dev/null  # the README's first command, as a user runs it

.PHONY: test-short
test-short: ## unit tests only, no servers (broker tests skip unless CI is set)
	$(GO) test -race -count=1 $(PKGS)

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg > /tmp/fuzz-$$f.log 2>&1 || { cat /tmp/fuzz-$$f.log; exit 1; }; \
	  done; \
	done

.PHONY: bench
bench: ## side-by-side benchmark: taskgen vs raw go-redis/amqp091, asynq, Celery, then chords and a chain vs Celery (~12 min); writes docs/BENCHMARKS.md (-phases workflow: only its Workflows section, see there)
	bash scripts/testenv.sh run -- $(GO) -C bench run ./cmd/compare -write ../docs/BENCHMARKS.md

.PHONY: bench-memory
bench-memory: ## worker RSS holding 10 000 ETA tasks and taskmon RSS following 100 000 tasks, on real brokers (~3 min); writes docs/MEMORY.md
	bash scripts/testenv.sh run -- $(GO) -C bench run ./cmd/memory -write ../docs/MEMORY.md

.PHONY: bench-scale
bench-scale: ## scale curves: worker processes, a 1M backlog, countdowns, 1 000 queues, payloads, result round trips, quorum/Sentinel (~15 min); writes docs/SCALE.md and docs/scale/*.png (-only SECTION: see there)
	bash scripts/testenv.sh run -- $(GO) -C bench run ./cmd/scale -write ../docs/SCALE.md

.PHONY: bench-micro
bench-micro: ## the packages' go test -bench micro-benchmarks (servers started as for make test)
	bash scripts/testenv.sh run -- $(GO) test -run '^$$' -bench . -benchmem $(PKGS)

.PHONY: taskvet
taskvet: ## check //task: directives and task signatures with go vet -vettool (cmd/taskvet)
	$(GO) build -o bin/taskvet ./cmd/taskvet
	$(GO) vet -vettool=$(abspath bin/taskvet) $(PKGS)

.PHONY: screenshots
screenshots: ## refresh docs/dashboard.png and docs/task.png (needs chromium)
	$(GO) test -count=1 -run TestBrowser ./monitor -update-screenshots

.PHONY: taskmon
taskmon: ## run the monitor: make taskmon BROKER=redis://… [BACKEND=…]
	$(GO) run ./cmd/taskmon -broker $(BROKER) $(if $(BACKEND),-backend $(BACKEND))

.PHONY: reliability
reliability: ## the reliability and security suite (docs/RELIABILITY.md) against throw-away Redis and RabbitMQ (~7 min; the high-availability part starts a 3-node RabbitMQ cluster and Redis Sentinel deployments of its own)
	bash scripts/testenv.sh run -- $(GO) test -tags reliability -count=1 -timeout 15m ./reliability/
