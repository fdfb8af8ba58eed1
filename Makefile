# The two set-up commands: `make run` and `make test`.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO ?= go

.PHONY: build run test test-short bench lint generate clean

## build: write bin/fhirserver (static, CGO_ENABLED=0)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/fhirserver ./cmd/fhirserver

## run: build and serve on http://localhost:8080/fhir with the embedded store in ./data
run: build
	./bin/fhirserver serve --auth off --log-format text

## test: the whole test suite: the quick suites under the race detector, then
## everything (long suites included) without it, where it would be too slow
test:
	$(GO) vet ./...
	$(GO) test -race -short -count=1 -timeout 15m ./...
	$(GO) test -count=1 -timeout 25m ./...

## test-short: the quick suite (skips the long ones)
test-short:
	$(GO) test -short -count=1 ./...

## bench: load generator against a real server (8 clients), plus Go benchmarks
bench: build
	$(GO) run ./cmd/fhirbench --server-bin bin/fhirserver
	$(GO) test -run '^$$' -bench . -benchtime 2s ./fhir/... ./conformance/...

## lint: go vet and gofmt
lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## generate: regenerate generated files (conformance/definitions/elements.json.gz)
generate:
	$(GO) generate ./...

clean:
	rm -rf bin
