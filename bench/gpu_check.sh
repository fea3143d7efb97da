#!/usr/bin/env bash
# gpu_check.sh — the GPU checks in one go, for a machine with an NVIDIA GPU, no network and PyTorch installed:
# the GPU tests, then ResNet-50 training throughput (synthetic data, batch 256, bf16) of ctrain beside PyTorch
# (eager, AMP bf16, channels_last: bench/torch_gpu_step.py), printed as one table. About 5 minutes on an H100.
#
# Here (the build machine):  make build && scripts/carry-gpu-deps.sh
# There:                     bench/gpu_check.sh            (with build/ctrain, build/tests/* and .deps/debs carried)
#
# It uses the carried build (built here for a portable x86-64 target, CUDA runtime linked statically) and the
# cuDNN/cuBLAS of the machine's PyTorch; the carried .deb files supply oneDNN, libyaml, ... and Fashion-MNIST.
# Exits non-zero when a test fails. Set CONFIGS to change the benchmark ("model:batch:res ...").
set -uo pipefail
cd "$(dirname "$0")/.."
CONFIGS=${CONFIGS:-"resnet50:256:224 resnet50:256:176"}
STEPS=${STEPS:-20}
DEPS=${DEPS:-/tmp/ctrain-deps}
status=0

# --- libraries: the carried Debian packages, and PyTorch's NVIDIA libraries (cuDNN, cuBLAS)
if [ -d .deps/debs ]; then
  mkdir -p "$DEPS"
  for f in .deps/debs/*.deb; do dpkg -x "$f" "$DEPS"; done
fi
nvlibs=$(python3 - <<'PY' 2>/dev/null
import os, nvidia
dirs = []
for base in nvidia.__path__:
    for root, sub, files in os.walk(base):
        if any(f.startswith(("libcudnn.so", "libcublas.so", "libcublasLt.so")) for f in files):
            dirs.append(root)
print(":".join(sorted(set(dirs))))
PY
)
export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:${nvlibs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CTRAIN_FIXTURES="$PWD/tests/fixtures" CTRAIN_SRC="$PWD"
[ -d "$DEPS/usr/share/datasets/fashion-mnist" ] && export CTRAIN_FMNIST_DIR="$DEPS/usr/share/datasets/fashion-mnist"

echo "# $(date -u +%Y-%m-%dT%H:%MZ)  $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
build/ctrain --version || { echo "gpu_check: build/ctrain does not start (missing libraries?)" >&2; exit 1; }

# --- the GPU tests
run_test() { # NAME CMD...: runs a test, 77 = skipped
  local name=$1; shift
  local t0 rc
  t0=$(date +%s)
  timeout 300 "$@" > "/tmp/gpu_check_$name.log" 2>&1; rc=$?
  case $rc in
    0) echo "PASS  $name ($(( $(date +%s) - t0 )) s)" ;;
    77) echo "SKIP  $name: $(tail -1 "/tmp/gpu_check_$name.log")"; status=1 ;;
    *) echo "FAIL  $name (exit $rc):"; tail -30 "/tmp/gpu_check_$name.log"; status=1 ;;
  esac
}
run_test cuda_ops build/tests/test_cuda_ops
run_test parity_cuda env CTRAIN_TEST_DEVICE=cuda build/tests/test_parity
run_test gpu_train bash tests/gpu/test_gpu_train.sh build/ctrain

# --- training throughput, ctrain beside PyTorch
printf '\n%-9s %5s %4s | %12s %9s | %12s %9s | %6s\n' model batch res "ctrain img/s" "peak GiB" "torch img/s" \
  "peak GiB" ratio
for c in $CONFIGS; do
  IFS=: read -r model batch res <<< "$c"
  ours=$(timeout 300 build/ctrain bench --device cuda --precision bf16 --model "$model" --batch "$batch" \
         --res "$res" --steps "$STEPS" --warmup 5 --json 2>&1 | tail -1)
  ips=$(sed -nE 's/.*"images_per_s": ([0-9.]+).*/\1/p' <<< "$ours")
  mem=$(sed -nE 's/.*"peak_device_gib": ([0-9.]+).*/\1/p' <<< "$ours")
  peer=$(env -u LD_LIBRARY_PATH timeout 300 python3 bench/torch_gpu_step.py "$model" "$batch" "$res" "$STEPS" 5 \
         2>/dev/null | tail -1)
  pips=$(sed -nE 's/.*"images_per_s": ([0-9.]+).*/\1/p' <<< "$peer")
  pmem=$(sed -nE 's/.*"peak_gib": ([0-9.]+).*/\1/p' <<< "$peer")
  ratio=$(awk -v a="${ips:-0}" -v b="${pips:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  printf '%-9s %5s %4s | %12s %9s | %12s %9s | %6s\n' "$model" "$batch" "$res" "${ips:-failed}" "${mem:--}" \
    "${pips:-failed}" "${pmem:--}" "$ratio"
  [ -n "$ips" ] || { echo "ctrain: $ours"; status=1; }
done
echo "(ctrain peak: memory ctrain's CUDA backend allocated; torch peak: torch.cuda.max_memory_allocated)"
exit $status
