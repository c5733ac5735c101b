# WSEmail - convenience targets over the Meson build.
#   make demo    install missing packages, build, run the demonstration
#   make check   install missing packages, build, run every test
#                (normal build + ASan/UBSan build)
#   make bench   run the benchmarks in bench/
#   make fuzz    build the libFuzzer targets with clang and run each briefly
#   make verify  run the ProVerif models in docs/proof (needs proverif on
#                the PATH: docs/proof/README.md says how to build it)

BUILD ?= build

.PHONY: all deps build check demo bench fuzz verify clean

all: build

deps:
	@scripts/deps.sh all

build: deps
	@if [ ! -f $(BUILD)/build.ninja ]; then meson setup $(BUILD) >/dev/null; fi
	@ninja -C $(BUILD)

check:
	@scripts/check.sh

demo: build
	@scripts/demo.sh $(BUILD)

bench: build
	@bench/run.sh $(BUILD)

fuzz: deps
	@scripts/fuzz.sh

verify:
	@scripts/verify.sh

clean:
	rm -rf build build-asan build-fuzz build.compile.log build-asan.compile.log _demo
