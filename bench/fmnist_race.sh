#!/usr/bin/env bash
# fmnist_race.sh — time to 93% test top-1 on Fashion-MNIST: `make demo`'s recipe (recipes/fmnist_resnet20.yaml)
# in ctrain beside bench/torch_fmnist_peer.py (the same ResNet-20, initialization, loss, optimizer, schedule,
# augmentation and batch in PyTorch), one after the other on this machine.
#
#   bench/fmnist_race.sh [THREADS] [EPOCHS]        # defaults: all cores, 10 (the recipe's)
#   CTRAIN_ARGS="--precision bf16" bench/fmnist_race.sh 2   # extra overrides for ctrain's run
#
# Both evaluate on the 10,000 test images after every epoch; the time is training + evaluation up to the first
# evaluation at or above 93% (start-up and data loading excluded on both sides). Prints each side's per-epoch
# top-1 and the ratio. Needs build/ctrain, Debian's dataset-fashion-mnist and python3 with torch (the peer).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-$(nproc)}
EPOCHS=${2:-10}
TARGET=${TARGET:-0.93}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

printf '# %s, %s threads, %s; target top-1 %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$THREADS" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$TARGET"
# shellcheck disable=SC2086
build/ctrain train -f recipes/fmnist_resnet20.yaml --max_duration "${EPOCHS}ep" --threads "$THREADS" \
  ${CTRAIN_ARGS:-} --run_dir "$TMP/ctrain" > /dev/null 2>&1
printf '# ctrain computed in %s%s\n' "$(sed -nE 's/.*"compute":[[:space:]]*"([a-z0-9]+)".*/\1/p' "$TMP/ctrain/summary.json")" \
  "${CTRAIN_ARGS:+ (extra arguments: $CTRAIN_ARGS)}"
# ctrain: epoch and eval events in order; cumulative seconds at each eval
grep -E '"event":"(epoch|eval)"' "$TMP/ctrain/metrics.jsonl" |
  sed -E 's/.*"event":"([a-z]+)","epoch":([0-9]+).*"seconds":([0-9.e+-]+).*/\1 \2 \3/' > "$TMP/c.ev"
grep '"event":"eval"' "$TMP/ctrain/metrics.jsonl" | sed -E 's/.*"top1":([0-9.]+).*/\1/' > "$TMP/c.top1"
awk 'NR==FNR { top[++k] = $1; next } { t += $3 } $1 == "eval" { e++; printf "epoch %d test_top1 %s seconds %.1f\n", $2, top[e], t }' \
  "$TMP/c.top1" "$TMP/c.ev" > "$TMP/c.txt"
THREADS=$THREADS python3 bench/torch_fmnist_peer.py "$EPOCHS" 1 > "$TMP/p.txt"

first() { awk -v m="$TARGET" '$4 >= m { print $6, $2; exit }' "$1"; }
printf '%-6s | %-22s | %-22s\n' epoch "ctrain top-1 (s)" "PyTorch $(python3 -c 'import torch; print(torch.__version__)') top-1 (s)"
paste -d' ' "$TMP/c.txt" "$TMP/p.txt" | awk '{ printf "%-6s | %.4f (%7.1f)       | %.4f (%7.1f)\n", $2, $4, $6, $10, $12 }'
c=$(first "$TMP/c.txt"); p=$(first "$TMP/p.txt")
echo "time to $TARGET: ctrain ${c:-not reached} | PyTorch ${p:-not reached} (seconds, epoch)"
if [ -n "$c" ] && [ -n "$p" ]; then
  awk -v a="${c% *}" -v b="${p% *}" 'BEGIN { printf "ratio (PyTorch / ctrain): %.2f\n", b / a }'
fi
