# pilotfish — see README.md.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/pilotfish
CONSUL   := .bin/consul

export CGO_ENABLED := 0

.PHONY: build test unit integration chaos bench bench-fleet bench-peers lint example fuzz consul clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pilotfish

# The whole suite, as CI runs it: unit tests and the integration tests that run the binary
# as PID 1 against real peers (a Consul agent built from source, Prometheus, curl, logger…),
# with the daemon under test built with -race too (PILOTFISH_RACE=1). Needs root (for
# unshare) on Linux.
test: build consul
	PILOTFISH_RACE=1 CGO_ENABLED=1 $(GO) test -race -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=5s

# Unit tests only (-short): the integration suite and the tests that need a Consul agent
# skip.
unit:
	CGO_ENABLED=1 $(GO) test -race -short ./...

integration: build
	PILOTFISH_RACE=1 CGO_ENABLED=1 $(GO) test -race -timeout 30m ./integration_tests/...

# The fault suite alone (it is part of `make test` too): kill and reload storms, control-API
# abuse, dead peers, blocked output and signals at the worst moment, each bounded in time.
chaos: build consul
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m -run 'Chaos|ConfigLimits|ControlStream|SignalWhileConfigLoads' ./integration_tests/

# Benchmarks: the bus, the control API and telemetry in-process; the kinds, Consul watches,
# syslog (against rsyslog when installed) and sd_notify through the binary; then the
# bench/ harness (start-up, shutdown, reaping, idle CPU, memory).
bench: build consul
	$(GO) test -run '^$$' -bench . -benchtime 2s ./events/ ./core/ ./telemetry/
	CGO_ENABLED=1 $(GO) test -run '^$$' -bench . ./integration_tests/
	bash bench/run

# A fleet on one Consul agent (docs/consul.md#a-fleet-on-one-agent): FLEET instances, each
# PID 1 of its own PID and UTS namespace with its own host name. Needs root. Takes a few
# minutes for the default sizes; e.g. `make bench-fleet FLEET=20`.
FLEET ?= 10,50,100,200
bench-fleet: build consul
	bash bench/run -only fleet -fleet $(FLEET)

# pilotfish side by side with tini, s6, supervisord and a minimal Go supervisor
# (bench/cmd/gofloor), each PID 1 of its own PID namespace, interleaved: medians, ratios to
# the Go floor and the goals (bench/README.md). Installs the missing peers with apt-get. Needs
# root. About 11 minutes on 2 cores; e.g. `make bench-peers PEERS_FLAGS="-peers-n 3"`. Writes
# bench/results/peers-DATE.md.
PEERS_FLAGS ?=
bench-peers: build
	bash bench/peers $(PEERS_FLAGS)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

# Every fuzz target for FUZZTIME each (go test fuzzes one target per run); `make test` runs
# them for 5s each. Their seed corpora are in each package's testdata/fuzz/TARGET/; an input
# that fails is written there too: keep it, it becomes a regression seed. A run that fails
# with nothing but "context deadline exceeded" is Go 1.26's own race at the end of -fuzztime
# on a busy machine (golang/go#75804, fixed in Go 1.27), not a finding: it is reported and
# passes.
FUZZTIME ?= 10s
fuzz:
	@failed=; \
	for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
	  pkg=$$(dirname $$f); \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    if out=$$($(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg/ 2>&1); then \
	      echo "ok   $$t $$pkg: $$(echo "$$out" | grep '^fuzz: elapsed' | tail -1 | sed 's/^fuzz: //')"; \
	    elif ! echo "$$out" | grep -q 'Failing input written' && echo "$$out" | grep -qx '    context deadline exceeded'; then \
	      echo "ok   $$t $$pkg: ended by Go's fuzztime race (golang/go#75804), nothing found"; \
	    else \
	      echo "FAIL $$t $$pkg:"; echo "$$out" | grep -v '^fuzz: elapsed'; failed="$$failed $$t"; \
	    fi; \
	  done; \
	done; \
	test -z "$$failed" || { echo "fuzz targets that failed:$$failed"; exit 1; }

# Runs the bundled example in the foreground: several dependent jobs, no Consul needed.
# Stop it with Ctrl-C.
example: build
	cd examples/quickstart && ../../$(BIN) -config pilotfish.hcl

# A real Consul agent for the integration tests, built from source (integration_tests/consul)
# and rebuilt only when that module changes. Tests that need it skip when it is missing.
consul: $(CONSUL)

$(CONSUL): integration_tests/consul/go.mod integration_tests/consul/go.sum integration_tests/consul/main.go
	@mkdir -p $(dir $@) && rm -f $@
	@echo "Building the Consul agent the integration tests run against ($@), once per checkout:"
	@echo "about 3 to 6 minutes on 2 cores with an empty module cache. Packages as they compile:"
	cd integration_tests/consul && CGO_ENABLED=0 $(GO) build -v -trimpath -buildvcs=false -ldflags "-s -w" -o $(CURDIR)/$@ . 2>&1 | awk '/ / { print; next } { n++; printf "\r  %5d packages built: %-60.60s", n, $$0; fflush() } END { print "" }'
	@test -x $@ || { echo "building the Consul agent failed"; exit 1; }
	@echo "Consul agent ready: $@"

clean:
	rm -rf bin .bin
