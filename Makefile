# pgbluegreen: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

GO      ?= go
BIN     := pgbluegreen
# The pinned PostgreSQL 17.5 build `lab deps` puts in the project's cache.
PG17    := .cache/pg/17.5/bin/pg_upgrade
# End-to-end tests start real servers; give them room on a 2-core machine.
TESTFLAGS ?= -race -timeout 25m

.PHONY: help build test lint demo bench deps deps-debian clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## build ./pgbluegreen
	$(GO) build -o $(BIN) .

deps: deps-debian $(PG17) ## install PgBouncer and PostgreSQL 15 (Debian) when missing; fetch PostgreSQL 17.5 (pinned, sha512 verified) into .cache

deps-debian:
	@missing=""; \
	command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing="$$missing pgbouncer"; \
	[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || missing="$$missing postgresql-15"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing:$$missing; run: sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	  echo "installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq$$missing >/dev/null; \
	  systemctl disable --now pgbouncer postgresql >/dev/null 2>&1 || service pgbouncer stop >/dev/null 2>&1 || true; \
	fi

$(PG17):
	$(GO) run . lab deps

test: deps ## run every test (go test -race), starting the real servers they need
	$(GO) test $(TESTFLAGS) ./...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

demo: deps build ## local blue 15 + green 17 + PgBouncer, and the program on them
	./$(BIN) demo --dir lab

bench: deps ## benchmarks: screen frame, sequence sync, cutover on the lab
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./...

clean: ## stop the demo lab and remove build outputs
	-./$(BIN) lab down --dir lab --purge 2>/dev/null
	rm -f $(BIN)
