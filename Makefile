# pgbluegreen: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

GO      ?= go
BIN     := pgbluegreen
# End-to-end tests start real servers; give them room on a 2-core machine.
TESTFLAGS ?= -race -timeout 25m
# Micro benchmarks, run at the default -benchtime so ns/op is an average:
# screen frame (ui), state file and journal (state), redo parsing (aws),
# sequence sync and lag poll on the lab (pg).
BENCH_MICRO := Frame|Redact|Journal|Update|Snapshot|ParseRedoDone|SequenceSync|ReadLag

.PHONY: help build test lint demo bench deps deps-debian clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## build ./pgbluegreen
	$(GO) build -o $(BIN) .

deps: deps-debian ## install PgBouncer, PostgreSQL 15, openssh-server and pgcopydb (Debian) when missing; fetch PostgreSQL 17.5 (pinned, sha512 verified) into the user's cache
	$(GO) run . lab deps

deps-debian:
	@missing=""; \
	command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing="$$missing pgbouncer"; \
	[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || missing="$$missing postgresql-15"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v pgcopydb >/dev/null 2>&1 || missing="$$missing pgcopydb"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing:$$missing; run: sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	  echo "installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq$$missing >/dev/null; \
	  for pkg in $$missing; do \
	    case $$pkg in postgresql-15) svc=postgresql;; openssh-server) svc=ssh;; pgbouncer) svc=pgbouncer;; *) continue;; esac; \
	    systemctl disable --now $$svc >/dev/null 2>&1 || service $$svc stop >/dev/null 2>&1 || true; \
	  done; \
	fi

test: deps ## run every test (go test -race), starting the real servers they need
	$(GO) test $(TESTFLAGS) ./...

lint: ## gofmt and go vet (with the kill tests' hooks too: -tags pgbgtest)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags pgbgtest ./...

demo: deps build ## local blue 15 + green 17 + PgBouncer, and the program on them
	./$(BIN) demo --dir lab

bench: deps ## benchmarks: micro ones at normal benchtime, lab scenarios once; ends with the cutover's JSON line
	$(GO) test -run '^$$' -bench '$(BENCH_MICRO)' -timeout 30m ./...
	@# Lab scenarios (a lab up, then one clone or one cutover) are measured once.
	$(GO) test -run '^$$' -bench 'Clone$$' -benchtime 1x -timeout 20m ./pg
	@# A remote ini over SSH: a whole rewrite, and the staged rename the pause waits for.
	$(GO) test -run '^$$' -bench 'SSHRepoint|SSHStagedRename' -benchtime 10x -timeout 10m ./pg
	@# The initial sync against pgcopydb and pg_dump/pg_restore -j2, once; PGBG_BENCH_SCALE=100 for issue 15's size.
	$(GO) test -run '^$$' -bench 'InitialSync$$' -benchtime 1x -timeout 120m ./steps
	@# awk passes everything through and repeats the JSON line last (failing
	@# when there is none); tee /dev/stderr would truncate a log file.
	@set -o pipefail; $(GO) test -run '^$$' -bench 'CutoverLab$$' -benchtime 1x -timeout 20m ./steps 2>&1 | \
	  awk '{ print } /^\{"method"/ { j = $$0 } END { if (j == "") exit 1; print j }'

clean: ## stop the demo lab and remove build outputs
	-./$(BIN) lab down --dir lab --purge 2>/dev/null
	rm -f $(BIN)
