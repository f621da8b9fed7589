# Convenience entry points; the build itself is meson + ninja (see README.md).
BUILD ?= build
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEPS := gcc pkg-config meson ninja-build libunwind-dev libelf-dev libdw-dev \
        libcapstone-dev zlib1g-dev python3 binutils util-linux gdb luajit libluajit-5.1-dev dpkg-dev make chromium \
        libperl-dev libdevel-nytprof-perl libdevel-size-perl perltidy wrk strace

.PHONY: deps build demo check check-asan bench clean

deps:
	@if ! dpkg -s $(DEPS) >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $(DEPS); fi

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	fixtures/demo.sh $(BUILD)

check: build
	meson test -C $(BUILD) --print-errorlogs

# the unit, dump and garbage suites under ASan + UBSan, in their own build directory
check-asan: deps
	[ -f $(BUILD)-asan/build.ninja ] || meson setup $(BUILD)-asan -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(BUILD)-asan
	meson test -C $(BUILD)-asan --setup=asan --print-errorlogs

bench: build
	bench/run

clean:
	rm -rf $(BUILD)
