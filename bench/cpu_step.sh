#!/usr/bin/env bash
# cpu_step.sh — ctrain's training step beside PyTorch's on this machine's CPU, in one run.
#
#   bench/cpu_step.sh [THREADS]            # default: all cores
#
# For each (model, batch, resolution) it runs `ctrain bench` and ../shared/bench/torch_cpu_step.py (PyTorch,
# channels_last, same batch, soft cross-entropy, SGD with momentum) back to back and prints images/s for both
# and their ratio. Needs build/ctrain and python3 with torch + torchvision (the peer; not a ctrain dependency).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-$(nproc)}
PEER=../shared/bench/torch_cpu_step.py
CONFIGS=${CONFIGS:-"resnet50:32:224 resnet50:32:128 resnet18:32:224"}
STEPS=${STEPS:-5}

printf '# %s, %s threads, %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$THREADS" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-10s %5s %4s | %12s %10s | %12s | %6s\n' model batch res "ctrain img/s" "GFLOP/s" "torch img/s" ratio
for c in $CONFIGS; do
  IFS=: read -r model batch res <<< "$c"
  ours=$(build/ctrain bench --model "$model" --batch "$batch" --res "$res" --steps "$STEPS" --threads "$THREADS" --json)
  ips=$(sed -E 's/.*"images_per_s": ([0-9.]+).*/\1/' <<< "$ours")
  gf=$(sed -E 's/.*"gflops": ([0-9.]+).*/\1/' <<< "$ours")
  peer=$(THREADS=$THREADS python3 "$PEER" "$model" "$batch" "$res" 1 "$STEPS" 2>/dev/null | sed -E 's/.*img\/s=([0-9.]+).*/\1/')
  ratio=$(awk -v a="$ips" -v b="$peer" 'BEGIN { printf "%.2f", a / b }')
  printf '%-10s %5s %4s | %12s %10s | %12s | %6s\n' "$model" "$batch" "$res" "$ips" "$gf" "$peer" "$ratio"
done
