# Patronus: one test command, `make test`, on a fresh machine of this project's kind.

# The module proxy only: with the ",direct" fallback a missing module makes go hang on a VCS fetch.
export GOPROXY := $(shell go env GOPROXY | sed 's/,direct//')

GO_PACKAGES := ./...
GENERATED := api/apigen api/client

.PHONY: test check spec spec-clients spec-lint readme-tour generate generate-check fmt-check vet staticcheck run build bench fuzz services

## test: every check and every test, against the real PostgreSQL and InfluxDB (started by .ci/with-services)
test: check spec readme-tour
	./.ci/with-services ./.ci/go-test $(GO_PACKAGES)

## check: generated code current, gofmt, go vet, staticcheck
check: generate-check fmt-check vet staticcheck

## spec: openapi.yaml against tools from outside this project: a second strict client generator and a linter
spec: spec-clients spec-lint

spec-clients:
	./.ci/ogen/run

spec-lint:
	./.ci/spec-lint/run

## readme-tour: the README's five-minute tour, run as written against a fresh service built from the tree
readme-tour:
	./.ci/readme-tour

generate:
	go generate ./...

generate-check: generate
	@if [ -n "$$(git status --porcelain -- $(GENERATED) 2>/dev/null)" ]; then \
		echo "generated code is not current: run 'go generate ./...' and commit"; \
		git status --short -- $(GENERATED); git diff --stat -- $(GENERATED); exit 1; fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	go vet $(GO_PACKAGES)

staticcheck:
	go tool staticcheck $(GO_PACKAGES)

## run: the service on the embedded default (SQLite file patronus.db, history in SQL)
run:
	go run ./cmd/patronus

build:
	go build -o patronus ./cmd/patronus
	go build -o patronus-loadgen ./cmd/patronus-loadgen

## services: a shell with PostgreSQL and InfluxDB started and PATRONUS_TEST_* exported
services:
	./.ci/with-services $${SHELL:-bash}

## bench: the benchmarks with their baselines, 6 runs each, summarised by benchstat into bench/
bench:
	mkdir -p bench
	./.ci/with-services sh -c 'go test -run "^$$" -bench . -benchmem -count 6 -cpu 1,2 ./... | tee bench/all.raw'
	go tool benchstat bench/all.raw

## fuzz: each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$(go list ./...); do \
		for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; done
