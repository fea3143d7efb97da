# ctrain — the two commands: `make demo` (train a ResNet-20 on Fashion-MNIST) and `make test` (the suite).
# Both install missing Debian packages first (scripts/install-deps.sh says which) and build with CMake.

BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)

.PHONY: all deps build demo test test-unit test-asan bench clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The main job: ResNet-20 on Fashion-MNIST to about 93% test accuracy (a few minutes on 2 cores).
demo: build
	$(BUILD)/ctrain train -f recipes/fmnist_resnet20.yaml --run_dir runs/demo

# The whole suite: unit tests, PyTorch parity, CLI and training tests, then the unit tests under ASan/UBSan.
test: build
	cd $(BUILD) && ctest --output-on-failure -j 2
	$(MAKE) test-asan

test-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DCTRAIN_SANITIZE=ON >/dev/null
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L unit -j 2

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
