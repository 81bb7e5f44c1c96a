# Equicast: `make test` is the project's test command (README.md); CI runs it through .ci/run.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# Debian packages the build and tests need. The cross sysroots are assembled separately by cross/sysroot.sh.
DEB_PACKAGES := libsodium-dev zlib1g-dev libsnmp-dev libjemalloc-dev pkg-config qemu-user-static binutils python3 iproute2 \
  smitools snmp snmpd snmptrapd

# The IETF base MIB modules (SNMPv2-SMI, ...) are not in Debian's main archive; tests and CI take them from here.
IETF_MIBS ?= $(abspath ../shared/mibs/ietf)

.PHONY: test demo deps lint mib-lint build unit-test cross-test fuzz bench-crypto clean

## test: install what is missing, build, run the unit tests, then the Embedded cross builds and their
## selftests (aarch64 and armv7hf under qemu, x86_64 natively, and aarch64 with SNMP, which must also answer
## snmpget and snmpwalk as an AgentX subagent of a private snmpd).
## test: see above.
test: deps lint mib-lint build unit-test cross-test

## deps: install missing Debian packages (needs root; otherwise it lists what to install).
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | \
	  grep -q "install ok installed" || echo "$$p"; done); \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "deps: missing packages: $$missing (run 'make deps' as root)" >&2; exit 1; fi; \
	echo "deps: installing $$missing"; \
	for attempt in 1 2 3; do apt-get update -qq && break || { echo "apt-get update failed, retrying" >&2; sleep 15; }; done; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null

## lint: swift-format (ships with the toolchain) against the committed .swift-format; warnings fail.
lint:
	swift format lint --strict -r Sources Tests bench/swift bench/fuzz Package.swift

## mib-lint: smilint at its strictest level must print nothing, and net-snmp must load the module by name.
mib-lint:
	@out=$$(SMIPATH=$(IETF_MIBS) smilint -l 6 -s mibs/EQUICAST-LITE-MIB.txt 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; echo "mib-lint: smilint is not clean" >&2; exit 1; fi
	@oid=$$(SNMP_PERSISTENT_DIR=$$(mktemp -d) snmptranslate -M $(CURDIR)/mibs:$(IETF_MIBS) -m EQUICAST-LITE-MIB \
	  -On EQUICAST-LITE-MIB::equicastUpdateAdminStatus); \
	test "$$oid" = .1.3.6.1.4.1.8072.9999.7411.1.4.5 || { echo "mib-lint: net-snmp read '$$oid'" >&2; exit 1; }
	@echo "mib-lint: EQUICAST-LITE-MIB is smilint -l 6 clean and loads in net-snmp"

build:
	swift build

unit-test:
	swift test

cross-test:
	cross/build.sh --arch all --test
	cross/cluster-test.sh aarch64
	cross/cluster-test.sh armv7hf
	cross/build.sh --arch aarch64 --snmp --test
	cross/snmp-test.sh aarch64

## demo: eight agents on loopback (one aarch64 under qemu) converge, take a signed release pushed to one of
## them, install it, then one is killed and the rest mark it failed.
demo: deps build
	cross/build.sh --arch aarch64
	demo/fleet.sh

## fuzz: run the six libFuzzer targets for SECONDS_EACH seconds each (default 60), or RUNS executions each.
fuzz:
	bench/fuzz.sh $${SECONDS_EACH:-60}

## bench-crypto: throughput of our wrappers next to direct C calls; writes bench/results/crypto.txt.
bench-crypto:
	bench/crypto.sh

clean:
	rm -rf .build cross/out bench/out
