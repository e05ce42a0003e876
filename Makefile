# make test: everything CI runs. It installs redis-server and Chromium if
# they are missing (as root, with apt-get) or says what to install, then vets
# and runs every test with the race detector, and the bench module's adapter tests (so that
# a broken contender cannot produce fast-but-wrong numbers).

GO ?= go

.PHONY: test check redis chromium vet lint bench fuzz demo

test: redis chromium vet
	$(GO) test -race -timeout 20m ./...
	$(GO) test -count=1 -run 'TestL1HitRatioMatchesOtter|TestInProcessMissAllocations|TestOutageCostsMilliseconds' .
	cd bench && $(GO) vet ./... && $(GO) test -timeout 10m ./...

# check is the quick loop: no race detector.
check: redis vet
	$(GO) test ./...

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change: $$out" >&2; exit 1; fi

# redis makes sure redis-server and redis-cli are installed: tests start
# private servers of their own on free loopback ports.
redis:
	@if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "make: installing redis-server and redis-tools with apt-get"; \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall redis-server redis-tools >/dev/null); \
			status=$$?; rm -f /usr/sbin/policy-rc.d; [ $$status = 0 ] || exit $$status; \
		else \
			echo "make: redis-server is missing: install it (Debian/Ubuntu: sudo apt-get install redis-server redis-tools; macOS: brew install redis) and run make test again" >&2; \
			exit 1; \
		fi; \
	fi
	@redis-server --version

# chromium makes sure a headless Chromium is installed: the live view's
# browser tests (internal/liveview) drive it with chromedp. Without it they
# skip, saying so.
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "make: installing chromium with apt-get"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || exit $$?; \
		else \
			echo "make: chromium is missing: install it (Debian/Ubuntu: sudo apt-get install chromium; macOS: brew install --cask chromium) and run make test again" >&2; \
			exit 1; \
		fi; \
	fi
	@chromium --version 2>/dev/null

# lint runs staticcheck at a pinned version, on both modules.
lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	cd bench && $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# fuzz runs the envelope decoder's fuzzer for a while.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./internal/wire

demo:
	$(GO) run ./cmd/tiercache demo
