# rtmd — one Makefile, no generated build files.
#
#   make                      release build: build/rtmd
#   make test                 unit tests, fuzz-corpus replay, black-box suite
#   make SAN=1                AddressSanitizer + UndefinedBehaviorSanitizer build in build-san/
#   make SAN=thread CC=clang  ThreadSanitizer build in build-tsan/ (the loop and the store's
#                             worker share the SQLite connection); a race aborts the process
#   make CC=clang             any C17 compiler; warnings are errors everywhere
#   make fuzz CC=clang        libFuzzer drivers in build-fuzz/ (clang only)
#   make install              build/rtmd to $(DESTDIR)$(PREFIX)/sbin, man pages to
#                             $(DESTDIR)$(PREFIX)/share/man (PREFIX=/usr/local)
#   make deb                  the Debian package (debian/), in build/deb/
#
# Sources are found by wildcard: every src/<module>/*.c goes into librtmd.a,
# every tests/unit/test_*.c is one unit-test binary, every fuzz/fuzz_*.c is one
# fuzz driver. Adding a file needs no edit here.

CC      ?= cc
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT     ?= -O1 -g
else ifeq ($(SAN),thread)
BUILD   ?= build-tsan
SANFLAGS = -fsanitize=thread -fno-omit-frame-pointer
OPT     ?= -O1 -g
export TSAN_OPTIONS ?= halt_on_error=1 abort_on_error=1
else
BUILD   ?= build
SANFLAGS =
OPT     ?= -O2 -g
endif

PKGS     = libuv openssl zlib sqlite3 libcjson hiredis libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS)) -lhttp_parser -lwslay -lpthread -lm

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla -Wpointer-arith -Wno-unused-parameter
CFLAGS  ?=
CFLAGS  += -std=c17 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(OPT) $(WARN) $(SANFLAGS) \
           -Isrc $(PKG_CFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS  += -DRTMD_VERSION='"$(VERSION)"'

LIB_SRC   := $(sort $(wildcard src/*/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ  := $(BUILD)/src/main.o
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC  := $(sort $(wildcard fuzz/fuzz_*.c))
REPLAY_BIN:= $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

PYTEST  ?= /usr/bin/python3 -m pytest

.PHONY: all test unit replay blackbox fuzz bench-tools clean format format-check install deb
# Keep the objects of pattern-rule chains (unit tests, fuzz drivers) between runs.
.SECONDARY:
all: $(BUILD)/rtmd $(UNIT_BIN) $(REPLAY_BIN) $(BENCH_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Files compiled into the binary with .incbin (src/api/assets.c): the
# compiler's dependency list does not name them. The dashboard's page is src/api/dashboard/.
ASSET_FILES := clients/js/rtm.js $(wildcard src/api/dashboard/*)
$(BUILD)/src/api/assets.o: $(ASSET_FILES)

$(BUILD)/librtmd.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/rtmd: $(MAIN_OBJ) $(BUILD)/librtmd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Unit tests may #include the .c they test (to reach its statics); the archive
# then supplies only the other modules.
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/librtmd.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

# Fuzz drivers built for corpus replay with any compiler (fuzz/replay.c has main()).
$(BUILD)/fuzz/%: $(BUILD)/fuzz/%.o $(BUILD)/fuzz/replay.o $(BUILD)/librtmd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/librtmd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do $$t; done

replay: $(REPLAY_BIN)
	@set -e; for f in $(REPLAY_BIN); do n=$$(basename $$f); $$f fuzz/corpus/$${n#fuzz_}; done

blackbox: $(BUILD)/rtmd
	RTMD_BIN=$(abspath $(BUILD)/rtmd) $(PYTEST) -q tests/blackbox

test: all
	@$(MAKE) --no-print-directory unit replay
	@$(MAKE) --no-print-directory blackbox

# libFuzzer: make fuzz CC=clang; then build-fuzz/fuzz_http fuzz/corpus/http
FUZZ_BUILD = build-fuzz
fuzz:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
	    OPT="-O1 -g" $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/fuzz/%.o) $(FUZZ_BUILD)/librtmd.a
	@set -e; for s in $(FUZZ_SRC); do n=$$(basename $$s .c); \
	  clang -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $(FUZZ_BUILD)/$$n $(FUZZ_BUILD)/fuzz/$$n.o \
	    $(FUZZ_BUILD)/librtmd.a $(PKG_LIBS); echo "built $(FUZZ_BUILD)/$$n"; done

format:
	clang-format -i $(LIB_SRC) $(wildcard src/*.c src/*/*.h) $(UNIT_SRC) $(wildcard fuzz/*.c fuzz/*.h bench/*.c bench/*.h)

format-check:
	clang-format --dry-run --Werror $(LIB_SRC) $(wildcard src/*.c src/*/*.h) $(UNIT_SRC) $(wildcard fuzz/*.c fuzz/*.h bench/*.c bench/*.h)

clean:
	rm -rf build build-san build-tsan build-fuzz build-clang

# Installs the server and the man pages (rtmd(8) by hand, rtmd.conf(5)
# generated from the config table); the config and the systemd unit are the
# package's (debian/rtmd.conf, debian/rtmd.service; docs/OPERATIONS.md).
PREFIX  ?= /usr/local
DESTDIR ?=
install: $(BUILD)/rtmd
	install -D -m 0755 $(BUILD)/rtmd $(DESTDIR)$(PREFIX)/sbin/rtmd
	@set -e; for m in $(wildcard man/*.[1-8]); do s=$${m##*.}; \
	  echo "install -D -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/$${m##*/}"; \
	  install -D -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/$${m##*/}; done

# dpkg-buildpackage in a copy of the tree (its clean step would remove build/,
# and it writes next to the source directory): the .deb, its .buildinfo and
# .changes end up in build/deb/. Files git ignores are not copied; outside a
# git checkout (a Docker build context) everything but the build outputs is.
DEB_DIR = build/deb
deb:
	@v=$$(dpkg-parsechangelog -S Version); [ "$$v" = "$(VERSION)" ] || \
	  { echo "debian/changelog is at $$v, VERSION at $(VERSION): add a changelog entry (dch -v $(VERSION))" >&2; exit 1; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/rtmd-$(VERSION)
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git ls-files -z --cached --others --exclude-standard | \
	    tar --null --ignore-failed-read -T - -cf - | tar -C $(DEB_DIR)/rtmd-$(VERSION) -xf -; \
	else \
	  tar --exclude-vcs --exclude=./build --exclude='./build-*' --exclude=./rtmd-data \
	    --exclude=./tests/blackbox/node/node_modules -cf - . | tar -C $(DEB_DIR)/rtmd-$(VERSION) -xf -; \
	fi
	cd $(DEB_DIR)/rtmd-$(VERSION) && dpkg-buildpackage -b -us -uc
	@ls -1 $(DEB_DIR)/*.deb

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Agora's npm token builders for the black-box tests (pinned by package-lock.json).
tests/blackbox/node/node_modules: tests/blackbox/node/package-lock.json
	cd tests/blackbox/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@
blackbox: tests/blackbox/node/node_modules
