# test_recipes.sh — every small-scale recipe family (recipes/fmnist_{baseline,mild,medium,hot}.yaml) trains
# through `ctrain train`, shortened to a few short epochs, and clears an accuracy bar; progressive resizing's
# sizes show in metrics.jsonl. (EMA's state in the checkpoint is checked by test_resume.sh.)
. "$(dirname "$0")/lib.sh"
MKIF="$(dirname "$CTRAIN")/make-imagefolder"

# Fashion-MNIST from the idx files: 4 epochs of 25 batches of 128, evaluated on 2000 test images. EMA keeps its
# smoothing per batch ratio but on a 10-batch half-life: with the recipes' 100 batches, a 100-batch run would be
# evaluated on weights that are mostly its first 20 batches' (Composer's EMA behaves the same way).
short="--max_duration 4ep --train_subset_num_batches 25 --eval_subset_num_batches 2 --eval_interval 4ep"
ema="--algorithms.ema.half_life 10ba --algorithms.ema.update_interval 2ba"
for r in baseline mild medium; do
  extra=""; [ $r = baseline ] || extra="$ema"
  # shellcheck disable=SC2086
  out=$("$CTRAIN" train -f "$SRC/recipes/fmnist_$r.yaml" $short $extra --run_dir "$T/$r" 2>&1) ||
    { fail "fmnist_$r failed: $out"; continue; }
done
bar baseline "$T/baseline" 0.70
# bf16 convolutions (fp32 master weights) clear the same bar, and really ran in bf16: summary.json says so and
# the losses differ from the fp32 run's (same seed, same data order)
if grep -q avx512_bf16 /proc/cpuinfo; then
  # shellcheck disable=SC2086
  out=$("$CTRAIN" train -f "$SRC/recipes/fmnist_baseline.yaml" $short --precision bf16 --run_dir "$T/bf16" 2>&1) ||
    fail "fmnist_baseline in bf16 failed: $out"
  bar "baseline bf16" "$T/bf16" 0.70
  grep -q '"compute":[[:space:]]*"bf16"' "$T/bf16/summary.json" || fail "the bf16 run did not compute in bf16"
  [ "$(losses "$T/bf16/metrics.jsonl")" != "$(losses "$T/baseline/metrics.jsonl")" ] ||
    fail "the bf16 run's losses are bit-identical to fp32's"
else
  # without AVX512_BF16 the request falls back to fp32, says so, and trains exactly as the fp32 run
  # shellcheck disable=SC2086
  out=$("$CTRAIN" train -f "$SRC/recipes/fmnist_baseline.yaml" $short --precision bf16 --run_dir "$T/bf16" 2>&1) ||
    fail "fmnist_baseline with --precision bf16 (fp32 fallback) failed: $out"
  echo "$out" | grep -q "computing in fp32" || fail "the bf16 fallback did not say it computes in fp32: $out"
  grep -q '"compute":[[:space:]]*"fp32"' "$T/bf16/summary.json" || fail "the bf16 fallback did not compute in fp32"
  [ "$(losses "$T/bf16/metrics.jsonl")" = "$(losses "$T/baseline/metrics.jsonl")" ] ||
    fail "the bf16 fallback's losses differ from the fp32 run's"
fi
# mild's 4 short epochs land at 0.68-0.74 over seeds 1-6, but a change of rounding alone (a layer moved between
# convolution kernels) once moved the recipe's seed 17 from 0.71 to 0.60: the bar sits below that spread
bar mild "$T/mild" 0.55
bar medium "$T/medium" 0.60
# progressive resizing: 16 px (scale 0.5) in the first epoch, the full 28 px in the last
grep '"event":"batch"' "$T/mild/metrics.jsonl" | head -1 | grep -q '"res":16' || fail "mild's first batch is not 16 px"
grep '"event":"batch"' "$T/mild/metrics.jsonl" | tail -1 | grep -q '"res":28' || fail "mild's last batch is not 28 px"
grep '"event":"batch"' "$T/baseline/metrics.jsonl" | grep -vq '"res":28' && fail "baseline trained below 28 px"

# Hot on an ImageNet-shaped JPEG folder (RandAugment, ColOut, sample-wise stochastic depth, SAM every 5th step):
# 8 epochs of 20 batches. Its regularizers cost accuracy in a run this short (the same run without algorithms
# reaches ~0.75, each algorithm alone 0.67-0.76), so its bar is lower.
D="$T/fm"
"$MKIF" fmnist "$D" --train 2560 --val 500 --min 56 --max 96 > /dev/null || fail "make-imagefolder failed"
out=$("$CTRAIN" train -f "$SRC/recipes/fmnist_hot.yaml" --train_dataset.imagenet.datadir "$D" \
      --val_dataset.imagenet.datadir "$D" --max_duration 8ep --eval_interval 8ep $ema --run_dir "$T/hot" 2>&1) ||
  fail "fmnist_hot failed: $out"
bar hot "$T/hot" 0.50
finish
