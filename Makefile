# Ferrum. `make run` builds and starts the controller on its embedded defaults;
# `make test` installs what the tests need (Debian packages) and runs every test.
GO      ?= go
BIN     := bin
PKGS    := ./...

.PHONY: all build run test test-setup unit vet fuzz bench bench-image bench-agentlink bench-powersync bench-cluster clean initramfs e2e demo

all: build

build:
	$(GO) build -o $(BIN)/ferrum-controller ./controller/cmd/ferrum-controller
	$(GO) build -o $(BIN)/ferrum-certs ./certs/cmd/ferrum-certs
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ferrum-agent ./agent/cmd/ferrum-agent

run: build
	./$(BIN)/ferrum-controller --api-addr 127.0.0.1:6385 --data-dir ./ferrum-data

# Everything CI runs: the package installs, vet, the whole suite with the race detector, and the
# slow tests that need real peers (FERRUM_CLI_TEST: the baremetal CLI; FERRUM_SLOW: crash tests;
# FERRUM_IPMI_SIM: ipmi_sim BMCs checked with ipmitool; FERRUM_LOOPDEV: loop devices and md, as root;
# FERRUM_VMTEST: the ramdisk booted under QEMU; FERRUM_E2E: the whole lifecycle on a QEMU machine behind ipmi_sim;
# FERRUM_QEMU_IMG: qcow2 fixtures built and checked with qemu-img;
# FERRUM_PG_DSN: a throwaway PostgreSQL server, started here and stopped after the tests).
test: test-setup vet
	@pg=$$(mktemp -d /tmp/ferrum-pg.XXXXXX) && dsn=$$(bash controller/store/postgres/test-setup.sh start $$pg) || exit 1; \
	echo "FERRUM_PG_DSN=$$dsn"; \
	FERRUM_PG_DSN=$$dsn FERRUM_CLI_TEST=1 FERRUM_SLOW=1 FERRUM_IPMI_SIM=1 FERRUM_LOOPDEV=1 FERRUM_VMTEST=1 FERRUM_E2E=1 FERRUM_QEMU_IMG=1 $(GO) test -race -count=1 -timeout 20m $(PKGS); \
	rc=$$?; bash controller/store/postgres/test-setup.sh stop $$pg; exit $$rc

test-setup:
	bash controller/cmd/ferrum-controller/test-setup.sh
	bash controller/store/postgres/test-setup.sh install
	bash agent/clean/test-setup.sh
	bash agent/raid/test-setup.sh
	bash agent/configdrive/test-setup.sh
	bash agent/image/test-setup.sh
	bash initramfs/vmtest/test-setup.sh
	bash initramfs/e2e/test-setup.sh

# The whole lifecycle on virtual hardware (docs/e2e.md): a QEMU machine behind an ipmi_sim BMC,
# enroll → inspect → provide → deploy → active (boots its disk) → undeploy → available.
e2e:
	bash initramfs/e2e/test-setup.sh
	FERRUM_E2E=1 $(GO) test -count=1 -v -timeout 15m -run 'TestLifecycle|TestChassisCommands' ./initramfs/e2e/

# The same lifecycle for watching, with readable progress.
demo:
	bash initramfs/e2e/test-setup.sh
	$(GO) run ./initramfs/e2e/cmd/demo

# The agent ramdisk: initramfs/out/{vmlinuz,initramfs.cpio.gz,manifest.txt} (initramfs/README.md).
initramfs:
	bash initramfs/build.sh

# Quick loop while developing: no installs, no slow tests.
unit:
	$(GO) test -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# Each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
FUZZPKGS ?= ./controller/api ./controller/boot ./controller/nova ./controller/power/ipmi ./shared/proto ./agent/link ./agent/cmd/ferrum-agent ./agent/internal/qcow2 ./agent/image ./agent/configdrive ./agent/bios ./agent/clean ./agent/internal/gpt ./agent/internal/blockdev ./agent/inspect ./agent/inspect/hints
fuzz:
	@for p in $(FUZZPKGS); do for t in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do \
		echo "== $$p $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; done; done

# Benchmarks recorded in docs/benchmarks.md.
bench:
	$(GO) run ./controller/bench -nodes 10000 -requests 200

# The agent link benchmark (docs/benchmarks.md): needs `ulimit -n` ≥ 20000 for 10,000 agents.
bench-agentlink:
	$(GO) run ./controller/bench/agentlink -agents 1000,10000

# 1 vs 3 controllers on one PostgreSQL database (a throwaway server, started and stopped here).
bench-cluster:
	bash controller/store/postgres/test-setup.sh install
	@pg=$$(mktemp -d /tmp/ferrum-pg.XXXXXX) && dsn=$$(bash controller/store/postgres/test-setup.sh start $$pg) || exit 1; \
	FERRUM_PG_DSN=$$dsn $(GO) run ./controller/bench/cluster -nodes 3000 -controllers 1,3; \
	rc=$$?; bash controller/store/postgres/test-setup.sh stop $$pg; exit $$rc

# Image writing (docs/benchmarks.md): raw, 10 GiB-virtual qcow2 and sparse raw over loopback
# HTTP, ferrum-agent against curl | dd and Ironic's download-then-qemu-img; a few minutes.
bench-image:
	bash agent/image/test-setup.sh
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ferrum-agent ./agent/cmd/ferrum-agent
	$(GO) run ./agent/bench/imagewrite -agent $(BIN)/ferrum-agent

# Power sync over IPMI: (a) 200 ipmi_sim BMCs against ipmitool, (b) 10,000 go-ipmi BMCs.
bench-powersync: test-setup
	$(GO) run ./controller/bench/powersync -mode ipmisim -n 200
	$(GO) run ./controller/bench/powersync -mode fleet -n 10000
	$(GO) run ./controller/bench/powersync -mode fleet -n 10000 -silent-every 100 -passes 6

clean:
	rm -rf $(BIN)
