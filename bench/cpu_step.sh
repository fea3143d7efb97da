#!/usr/bin/env bash
# cpu_step.sh — ctrain's training step beside PyTorch's on this machine's CPU, in one run, with the machine's
# fp32 GEMM peak as the yardstick.
#
#   bench/cpu_step.sh [THREADS]            # default: all cores
#   REPEATS=3 bench/cpu_step.sh 2          # each row 3 times, back to back, then a median row
#
# First bench/gemm_peak.py measures the best fp32 GEMM rate (numpy/OpenBLAS and PyTorch, 4096^3). Then for each
# (model, batch, resolution) it runs, back to back: `ctrain bench` in fp32 and in bf16 (when the CPU has
# AVX512_BF16), and ../shared/bench/torch_cpu_step.py (channels_last, same batch, SGD with momentum) under the
# newest PyTorch on python3's path and, when Debian's python3-torch is installed, under /usr/bin/python3 with
# only Debian's packages. It prints images/s, ctrain's GFLOP/s (training FLOPs = 3 x forward of conv + fc) as a
# share of the GEMM peak, the ratios, and every process's peak resident memory (/usr/bin/time). With REPEATS=N
# each configuration runs N times in turn (ctrain, peers, ctrain, peers, ...) and a "median" row gives the median
# of each column's images/s and of each repeat's own ratios: on a shared machine single rows move by up to 30%.
# Needs build/ctrain, /usr/bin/time, python3 with numpy + torch + torchvision (the peers, not ctrain deps).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-$(nproc)}
PEER=../shared/bench/torch_cpu_step.py
CONFIGS=${CONFIGS:-"resnet50:32:224 resnet50:32:176 resnet50:32:128 resnet18:32:224"}
STEPS=${STEPS:-5}
REPEATS=${REPEATS:-1}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# run NAME CMD...: runs CMD under /usr/bin/time, stdout to $TMP/NAME, peak RSS (MiB) to $TMP/NAME.rss
run() {
  local name="$1"; shift
  /usr/bin/time -f '%M' -o "$TMP/$name.rss" "$@" > "$TMP/$name" 2> "$TMP/$name.err" ||
    { echo "failed: $* ($(tail -1 "$TMP/$name.err"))" >&2; echo "" > "$TMP/$name"; echo 0 > "$TMP/$name.rss"; }
  awk '{ printf "%.0f", $1 / 1024 }' "$TMP/$name.rss" > "$TMP/$name.mib"
}
field() { sed -nE "s/.*\"$2\": ([0-9.]+).*/\1/p" "$TMP/$1"; }
peer_ips() { sed -nE 's/.*img\/s=([0-9.]+).*/\1/p' "$TMP/$1"; }
median() { tr ' ' '\n' | grep -v -e '^-*$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "-" }'; }

BF16=0; grep -qw avx512_bf16 /proc/cpuinfo && BF16=1
DEBIAN=0; env -i PATH=/usr/bin:/bin /usr/bin/python3 -c 'import torch, torchvision' 2> /dev/null && DEBIAN=1
NEW_V=$(python3 -c 'import torch; print(torch.__version__)')
DEB_V=$([ $DEBIAN = 1 ] && env -i PATH=/usr/bin:/bin /usr/bin/python3 -c 'import torch; print(torch.__version__)' || echo none)
PEAK_LINE=$(THREADS=$THREADS python3 bench/gemm_peak.py)
PEAK=$(sed -E 's/gemm_gflops=([0-9.]+).*/\1/' <<< "$PEAK_LINE")

printf '# %s, %s threads, %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$THREADS" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '# fp32 GEMM peak (GFLOP/s): %s\n' "$PEAK_LINE"
printf '# peers: newest PyTorch %s (python3), Debian PyTorch %s (/usr/bin/python3); all channels_last\n' "$NEW_V" "$DEB_V"
printf '# images/s (peak RSS MiB); ratios are ctrain fp32 over each peer, bf16 over ctrain fp32\n'
printf '%-9s %3s | %14s %7s %6s | %14s %5s | %14s %5s | %14s %5s\n' model res "ctrain fp32" GFLOP/s "%peak" \
  "ctrain bf16" "x" "torch $NEW_V" "x" "torch $DEB_V" "x"
for c in $CONFIGS; do
  IFS=: read -r model batch res <<< "$c"
  args=(--model "$model" --batch "$batch" --res "$res" --steps "$STEPS" --threads "$THREADS" --json)
  all_f='' all_b='' all_n='' all_d='' all_bx='' all_nx='' all_dx=''
  for ((rep = 1; rep <= REPEATS; rep++)); do
    run f32 build/ctrain bench "${args[@]}"
    if [ $BF16 = 1 ]; then run b16 build/ctrain bench "${args[@]}" --precision bf16; else echo "" > "$TMP/b16"; echo 0 > "$TMP/b16.mib"; fi
    run new env THREADS="$THREADS" python3 "$PEER" "$model" "$batch" "$res" 1 "$STEPS"
    if [ $DEBIAN = 1 ]; then
      run deb env -i PATH=/usr/bin:/bin THREADS="$THREADS" /usr/bin/python3 "$PEER" "$model" "$batch" "$res" 1 "$STEPS"
    else echo "" > "$TMP/deb"; echo 0 > "$TMP/deb.mib"; fi
    f=$(field f32 images_per_s); gf=$(field f32 gflops); b=$(field b16 images_per_s)
    n=$(peer_ips new); d=$(peer_ips deb)
    share=$(awk -v g="$gf" -v p="$PEAK" 'BEGIN { printf "%.0f%%", 100 * g / p }')
    bx=$(ratio "$b" "$f"); nx=$(ratio "$f" "$n"); dx=$(ratio "$f" "$d")
    printf '%-9s %3s | %6s (%5s) %7s %6s | %6s (%5s) %5s | %6s (%5s) %5s | %6s (%5s) %5s\n' "$model" "$res" \
      "$f" "$(cat "$TMP/f32.mib")" "$gf" "$share" "${b:--}" "$(cat "$TMP/b16.mib")" "$bx" \
      "${n:--}" "$(cat "$TMP/new.mib")" "$nx" "${d:--}" "$(cat "$TMP/deb.mib")" "$dx"
    all_f+=" $f" all_b+=" $b" all_n+=" $n" all_d+=" $d"
    all_bx+=" $bx" all_nx+=" $nx" all_dx+=" $dx"
  done
  if [ "$REPEATS" -gt 1 ]; then
    printf '%-13s | %6s %23s | %6s %13s | %6s %13s | %6s %13s\n' "median" "$(median <<< "$all_f")" "" \
      "$(median <<< "$all_b")" "$(median <<< "$all_bx")" "$(median <<< "$all_n")" "$(median <<< "$all_nx")" \
      "$(median <<< "$all_d")" "$(median <<< "$all_dx")"
  fi
done
