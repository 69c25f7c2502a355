# galera-supervisor. `make test` and `make demo` do all the set-up on a fresh
# Debian 12 machine, as root.
SHELL    := /bin/bash
GO       ?= go
BIN      := $(CURDIR)/bin
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
FUZZTIME ?= 10s
# Real-node tests fail instead of skipping when their binaries are missing.
export GS_TEST_REAL ?= 1
export PATH := $(BIN):$(shell $(GO) env GOPATH)/bin:$(PATH)

DEB_PKGS := mariadb-server mariadb-backup galera-4 rsync socat lz4 pv iproute2 \
            systemd-container debootstrap dbus openssl psmisc groff-base zsh fish rpm rsyslog \
            lintian rpmlint haproxy prometheus
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build deps test test-unit test-fuzz test-integration test-systemd lint demo bench package clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...
	ln -sf galera-supervisor $(BIN)/wsrep_sst_native-copy
	ln -sf galera-supervisor $(BIN)/wsrep_sst_native-backup

# Installs the Debian packages that are missing (apt's output in DEPS_LOG)
# and stops a mariadb.service the mariadb-server package started on its empty
# datadir; one that holds data stops make unless GS_STOP_MARIADB=1.
DEPS_LOG ?= /tmp/galera-supervisor-deps.log
deps:
	@scripts/deps.sh $(DEPS_LOG) $(DEB_PKGS)

test: deps build lint test-unit test-fuzz test-integration test-systemd

test-unit:
	$(GO) test -race -short -count=1 ./...

# Each fuzz target runs for FUZZTIME; the list is found, not kept by hand.
# Go 1.26's fuzz coordinator can fail a run with "context deadline exceeded"
# at the end of FUZZTIME on a busy machine (Go issue 75804, fixed in 1.27).
# Such a run writes no failing input, so it gets two retries; a run that
# writes one under testdata/fuzz/ fails at once.
test-fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | cut -c6-); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			before=$$(ls $$dir/testdata/fuzz/$$f 2>/dev/null | wc -l); \
			for try in 1 2 3; do \
				if $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; then break; fi; \
				after=$$(ls $$dir/testdata/fuzz/$$f 2>/dev/null | wc -l); \
				if [ "$$after" -gt "$$before" ]; then echo "fuzz $$f: failing input in $$dir/testdata/fuzz/$$f"; exit 1; fi; \
				if [ $$try = 3 ]; then echo "fuzz $$f: failed 3 times without a failing input"; exit 1; fi; \
				echo "fuzz $$f failed without a failing input (Go issue 75804); retrying"; \
			done; \
		done; \
	done

# Real mariadbd, galera-4 and mariadb-backup on loopback, one package at a time.
test-integration: build
	$(GO) test -race -count=1 -p 1 -timeout 60m -run '^TestReal' ./...

# Real systemd, journald and D-Bus in systemd-nspawn.
test-systemd: build
	$(GO) test -count=1 -p 1 -timeout 40m -run '^TestSystemd' ./...

lint:
	$(GO) vet ./...
	@command -v staticcheck >/dev/null || $(GO) install $(STATICCHECK)
	staticcheck ./...

# DEMO_SECONDS=N stops N s after the cluster is up (0: at Ctrl-C); DEMO_FLAGS
# adds galera-demo flags (-data 1GB, -keep).
DEMO_SECONDS ?= 0
demo: deps build
	$(BIN)/galera-demo -seconds $(DEMO_SECONDS) $(DEMO_FLAGS)

# BENCH_FLAGS go to the one-table run, TABLES_BENCH_FLAGS to the many-tables
# one (-tables 30000), DELTA_BENCH_FLAGS to the shaped-link delta one (about
# 25 minutes at the default 4G; -size 200M for a quick one). BASELINE=DIR
# (another build's bin dir) runs the one-table bench's native methods with
# its SST binaries too, alternating, and prints this build's time / its.
TABLES_BENCH ?= 30000
BASELINE ?=
bench: deps build
	$(BIN)/galera-bench $(if $(BASELINE),-baseline $(BASELINE)) $(BENCH_FLAGS)
	$(BIN)/galera-bench -tables $(TABLES_BENCH) $(TABLES_BENCH_FLAGS)
	$(BIN)/galera-bench -delta $(DELTA_BENCH_FLAGS)
	$(BIN)/galera-bench -endpoint $(ENDPOINT_BENCH_FLAGS)

# dist/*.deb and dist/*.rpm, by nfpm: a Go tool of its own module
# (packaging/tools/go.mod), so the main module's go.mod stays as it is.
# The version is v<tag> without the v, else 0.0.0~git<commit time>.<hash>.
PKG_VERSION ?= $(shell t=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo $${t#v} | tr - '~' || \
	git log -1 --format='0.0.0~git%cd.%h' --date=format:%Y%m%d%H%M%S 2>/dev/null || echo 0.0.0~dev)
# The packages' Maintainer and their changelog's author.
PKG_MAINTAINER ?= galera-supervisor developers <maintainers@galera-supervisor.org>
PKG_DATE := $(shell git log -1 --format=%cI 2>/dev/null || date -u +%FT%TZ)
NFPM := $(GO) tool -modfile=$(CURDIR)/packaging/tools/go.mod nfpm
# Debian's policy, checked by lintian and rpmlint (TestSystemdPackageLint):
# a stripped binary, man pages gzip -9n, a changelog entry for this version.
package:
	rm -rf dist
	@mkdir -p dist/build/completion dist/build/man
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -X main.version=$(PKG_VERSION)' -o dist/build/ ./cmd/galera-supervisor
	for sh in bash zsh fish; do dist/build/galera-supervisor completion $$sh > dist/build/completion/$$sh; done
	for m in packaging/*.8; do gzip -9n < $$m > dist/build/man/$${m##*/}.gz; done
	printf -- '- semver: %s-1\n  date: %s\n  packager: %s\n  deb:\n    urgency: medium\n    distributions: [unstable]\n  changes:\n    - note: "Build of %s; the changes are in its git history."\n' \
		'$(PKG_VERSION)' '$(PKG_DATE)' '$(PKG_MAINTAINER)' "$$(git describe --always --dirty 2>/dev/null || echo $(PKG_VERSION))" > dist/build/changelog.yml
	for p in deb rpm; do \
		PKG_VERSION='$(PKG_VERSION)' PKG_MAINTAINER='$(PKG_MAINTAINER)' GOARCH=$$($(GO) env GOARCH) $(NFPM) pkg --packager $$p --config packaging/nfpm.yaml --target dist/ || exit 1; \
	done
	@ls -l dist/*.deb dist/*.rpm

clean:
	rm -rf $(BIN) dist
