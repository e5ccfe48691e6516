# Thin wrapper over CMake. `make test` and `make demo` install what they need.
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
CMAKE_FLAGS ?=
# The fuzz pass: a clang build whose libraries carry libFuzzer's coverage
# instrumentation, each target run FUZZ_SECONDS over a copy of its corpus.
FUZZ_BUILD ?= build-fz
FUZZ_SECONDS ?= 20
FUZZ_TARGETS = pak_record chunk_codec wire_frame wire_path http_query

.PHONY: all deps build build-asan test test-normal test-asan format-check \
        format demo bench clean build-fuzz fuzz

all: build

deps:
	@./.ci/install-deps

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

$(ASAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DORBIT_SANITIZE=ON \
	    $(CMAKE_FLAGS)

$(FUZZ_BUILD)/CMakeCache.txt: | deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DORBIT_FUZZ=ON -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
	    $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test-normal: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j $(JOBS)

SOURCES = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null || \
                  find . -path ./build\* -prune -o -name '*.[ch]' -print)

format-check: deps
	@clang-format --dry-run -Werror $(SOURCES) && echo "format: ok"

format:
	clang-format -i $(SOURCES)

build-fuzz: $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS) \
	    --target $(addprefix fuzz_,$(FUZZ_TARGETS))

# On a crash the input lands in tests/fuzz/crashes/NAME/ and this fails.
fuzz: build-fuzz
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(JOBS) \
	    ./tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TARGETS)

# The fuzz pass runs after both suites, whatever the -j.
test: format-check test-normal test-asan
	@$(MAKE) --no-print-directory fuzz
	@echo "orbit: normal and sanitizer suites and the fuzz pass passed, formatting clean"

demo: build
	@./.ci/demo $(BUILD)

bench: build
	@./bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
