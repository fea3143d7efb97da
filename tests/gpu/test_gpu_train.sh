# test_gpu_train.sh — training on the GPU through `ctrain train --device cuda`: a short Fashion-MNIST run clears
# its accuracy bar in fp32 and in bf16 (precision amp), and every algorithm of the mild and medium recipes runs.
# Without a GPU it prints "skipped: no GPU" and exits 77 (ctest's "skipped").
. "$(dirname "$0")/../cli/lib.sh"

probe=$("$CTRAIN" bench --device cuda --model resnet8 --width 4 --batch 2 --res 16 --classes 3 --channels 1 \
        --steps 1 2>&1)
case "$probe" in
  *"no usable NVIDIA GPU"*|*"built without CUDA"*) echo "skipped: no GPU (${probe##*: })"; rm -rf "$T"; exit 77 ;;
esac
echo "$probe"

# CTRAIN_FMNIST_DIR: where the Fashion-MNIST files are when not in the recipes' default folder
data=()
[ -n "${CTRAIN_FMNIST_DIR:-}" ] &&
  data=(--train_dataset.idx.datadir "$CTRAIN_FMNIST_DIR" --val_dataset.idx.datadir "$CTRAIN_FMNIST_DIR")

# the baseline recipe, 2 full epochs, fp32 and bf16
for prec in fp32 amp; do
  out=$("$CTRAIN" train -f "$SRC/recipes/fmnist_baseline.yaml" --device cuda --precision $prec --max_duration 2ep \
        "${data[@]}" --run_dir "$T/base_$prec" 2>&1) || fail "baseline on the GPU ($prec) failed: $out"
  bar "baseline $prec" "$T/base_$prec" 0.85
done
grep -Eq "\"device\":[[:space:]]*\"cuda\"" "$T/base_fp32/summary.json" || fail "summary.json does not name the cuda device"

# every algorithm of mild and medium on the GPU (shortened as in tests/cli/test_recipes.sh)
short="--max_duration 4ep --train_subset_num_batches 25 --eval_subset_num_batches 2 --eval_interval 4ep"
ema="--algorithms.ema.half_life 10ba --algorithms.ema.update_interval 2ba"
for r in mild medium; do
  # shellcheck disable=SC2086
  out=$("$CTRAIN" train -f "$SRC/recipes/fmnist_$r.yaml" --device cuda $short $ema "${data[@]}" --run_dir "$T/$r" \
        2>&1) ||
    fail "fmnist_$r on the GPU failed: $out"
  bar "$r" "$T/$r" 0.60
done
finish
