# ctrain — the two commands: `make demo` (train a ResNet-20 on Fashion-MNIST) and `make test` (the suite).
# Both install missing Debian packages first (scripts/install-deps.sh says which) and build with CMake.

BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)

.PHONY: all deps build demo demo-imagenet test test-avx2 test-asan clean

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

# The ImageNet data path on data that installs anywhere: Fashion-MNIST rendered as an ImageFolder of JPEGs,
# converted to FFCV .beton files, trained with RandomResizedCrop (about 2 minutes on 2 cores).
demo-imagenet: build
	@[ -d data/fmnist-jpeg/train ] || $(BUILD)/make-imagefolder fmnist data/fmnist-jpeg --train 10000 --val 2000
	$(BUILD)/ctrain convert data/fmnist-jpeg/train data/fmnist-jpeg/train.beton --write_mode proportion --seed 0
	$(BUILD)/ctrain convert data/fmnist-jpeg/val data/fmnist-jpeg/val.beton --write_mode proportion --seed 0
	$(BUILD)/ctrain train -f recipes/fmnist_imagenet_path.yaml --run_dir runs/demo-imagenet

# The whole suite: unit tests, PyTorch parity, CLI and training tests, the unit tests again as on an AVX2-only
# CPU, then the unit tests under ASan/UBSan.
test: build
	cd $(BUILD) && ctest --output-on-failure -j 2
	$(MAKE) test-avx2
	$(MAKE) test-asan

# The unit tests with oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA; the cpu backend's layouts and kernel rules follow
# the ISA oneDNN reports): nChw8c activations, oneDNN's AVX2 kernels and the rules made for them, the AVX2
# Winograd tile rule; the three bf16 kernel tests skip, as on such a CPU. Batch norm still picks its build by
# CPUID (test_bn_isa_tables_same compares both). On a CPU without AVX-512 this repeats the first run.
test-avx2: build
	cd $(BUILD) && ONEDNN_MAX_CPU_ISA=AVX2 ctest --output-on-failure -L unit -j 2

test-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DCTRAIN_SANITIZE=ON -DCTRAIN_CUDA=OFF >/dev/null
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L unit -j 2

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
