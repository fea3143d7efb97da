#!/usr/bin/env bash
# test_train.sh — a short real training run on Fashion-MNIST must clear an accuracy bar; its outputs
# (run folder, summary, checkpoint) are usable by eval and predict; bench reports what it measured;
# grad_accum: auto splits a batch that does not fit in memory.
source "$(dirname "$0")/lib.sh"
cat > "$T/fm.yaml" <<YAML
model: {resnet: {model_name: resnet8, width: 16, num_classes: 10}}
train_dataset: {idx: {is_train: true}}
val_dataset: {idx: {is_train: false, shuffle: false, drop_last: false}}
optimizers: {sgd: {lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}}
schedulers: {cosine_decay_with_warmup: {t_warmup: 30ba}}
max_duration: 3ep
train_batch_size: 128
eval_batch_size: 1000
train_subset_num_batches: 120
eval_subset_num_batches: 3
save_folder: $T/ck
seed: 1
YAML
# 3 x 120 batches of 128 = 46,080 images seen; 3,000 test images. Chance is 0.10; this reaches 0.824.
"$CTRAIN" train -f "$T/fm.yaml" --run_dir "$T/run" --quiet > "$T/out.txt" 2>&1 || { cat "$T/out.txt"; fail "training failed"; }
top1=$(grep '"event":"eval"' "$T/run/metrics.jsonl" | tail -1 | sed -E 's/.*"top1":([^,]+),.*/\1/')
echo "Fashion-MNIST subset: top1 $top1"
awk -v a="$top1" 'BEGIN { exit !(a >= 0.78) }' || fail "top1 $top1 is below the bar of 0.78"
for f in config.yaml metrics.jsonl summary.json; do [ -s "$T/run/$f" ] || fail "run folder lacks $f"; done
grep -q '"final_eval"' "$T/run/summary.json" || fail "summary.json has no final_eval"
grep -q "done: 3 epochs" "$T/out.txt" || fail "no closing line: $(tail -2 "$T/out.txt")"
# the resolved config in the run folder is itself a recipe that loads
expect_ok "schedule: max_duration 3ep" "$CTRAIN" train -f "$T/run/config.yaml" --dump

# predict: photos (JPEG, PNG, gray and colour) get Fashion-MNIST class names; --output writes the logits
W="$T/ck/latest.safetensors"
P="$SHARED/fixtures/photos"
expect_ok "Ankle boot" "$CTRAIN" predict -f "$T/fm.yaml" --load "$W" --top 10 --output "$T/logits.npy" \
  "$P/coffee.jpg" "$P/camera_gray.jpg" "$P/synthetic/syn_checker_w33_h17.png"
[ "$(head -c 6 "$T/logits.npy" | tail -c 5)" = "NUMPY" ] || fail "logits.npy is not a .npy file"
# 3 x 10 float32 after a 128-byte header
[ "$(stat -c %s "$T/logits.npy")" -eq $((128 + 3 * 10 * 4)) ] || fail "logits.npy has the wrong size"
expect_fail "not a JPEG or PNG" "$CTRAIN" predict -f "$T/fm.yaml" --load "$W" "$T/fm.yaml"

# bench: the JSON fields other tools read
out=$("$CTRAIN" bench --model resnet18 --batch 4 --res 32 --steps 2 --json 2>&1) || fail "bench failed: $out"
for k in images_per_s gflops model batch res threads device; do
  case "$out" in *"\"$k\""*) ;; *) fail "bench --json lacks $k: $out" ;; esac
done
expect_fail "unknown model" "$CTRAIN" bench --model resnet7

# bench --layers: a row per layer (input, output, kernel, the cpu kernel of each conv pass) whose times add up to
# the kind table's rows and, with the loss and the optimizer, to its measured total; fused layers take no time
out=$("$CTRAIN" bench --model resnet18 --batch 4 --res 32 --steps 2 --layers 2>&1) || fail "bench --layers failed: $out"
echo "$out" | grep -Eq '^ +53 layer4\.0\.conv2 +conv +512x1x1 +512x1x1 +3x3/1 .*% +[a-z0-9_:]+' ||
  fail "bench --layers: no layer4.0.conv2 row with its shapes and kernel: $out"
check=$(echo "$out" | awk '
  $1 == "conv" && NF >= 5 { kf = $3; kb = $4 }
  $1 == "loss" { loss = $2 } $1 == "optimizer" { opt = $2 } $1 == "total" { total = $2 }
  $1 ~ /^[0-9]+$/ && NF >= 9 { rows++; sum += $7 + $8; if ($3 == "conv") { cf += $7; cb += $8 }
                              if (/run by the layer before/ && $7 + $8 > 0) bad = bad " " $1 }
  END { d = sum + loss + opt - total; if (d < 0) d = -d; e = cf - kf; if (e < 0) e = -e; g = cb - kb; if (g < 0) g = -g
        if (rows != 68) print "rows " rows; if (d > 0.1 + 0.005 * rows) print "sum " sum " total " total
        if (e > 0.1 || g > 0.1) print "conv " cf "/" cb " kind " kf "/" kb; if (bad != "") print "fused rows with time:" bad }')
[ -z "$check" ] || fail "bench --layers does not add up ($check): $out"

# grad_accum: auto. Under a 1 GB data limit (ulimit -d) a batch of 4096 (a 1.2 GB plan) does not fit whole:
# an explicit grad_accum 1 stops with a clear error, auto splits the batch into N > 1 micro-batches and trains
# exactly as an explicit grad_accum N does (same losses).
small_recipe "$T/ga.yaml"
ga="--train_batch_size 4096 --max_duration 1ba --eval_interval 0"
# shellcheck disable=SC2086
(before=$FAILS; ulimit -d 1000000; expect_fail "grad_accum (auto finds one)" "$CTRAIN" train -f "$T/ga.yaml" $ga \
  --grad_accum 1 --run_dir "$T/ga1"; [ "$FAILS" -eq "$before" ]) || fail "grad_accum 1 under the memory limit"
# shellcheck disable=SC2086
out=$(ulimit -d 1000000; "$CTRAIN" train -f "$T/ga.yaml" $ga --grad_accum auto --run_dir "$T/gaa" 2>&1) ||
  fail "grad_accum auto under the memory limit failed: $out"
n=$(echo "$out" | sed -nE 's/.*batches of 4096 \(([0-9]+) micro-batches\).*/\1/p')
[ "${n:-1}" -gt 1 ] || fail "grad_accum auto did not split the batch: $out"
echo "$out" | grep -q "grad_accum auto: a micro-batch of 4096 at 28x28 does not fit" || fail "auto did not say why: $out"
# shellcheck disable=SC2086
"$CTRAIN" train -f "$T/ga.yaml" $ga --grad_accum "${n:-2}" --run_dir "$T/gan" > /dev/null 2>&1 ||
  fail "grad_accum ${n:-2} failed"
[ -n "$(losses "$T/gaa/metrics.jsonl")" ] || fail "grad_accum auto's run logged no loss"
[ "$(losses "$T/gaa/metrics.jsonl")" = "$(losses "$T/gan/metrics.jsonl")" ] ||
  fail "grad_accum auto's losses differ from grad_accum $n's"
finish
