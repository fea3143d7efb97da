#!/usr/bin/env bash
# test_imagenet_path.sh — the ImageNet data path end to end: an ImageFolder of JPEGs, ctrain convert to .beton,
# ctrain inspect, training from the .beton and from the ImageFolder with Composer's imagenet keys, Composer's
# ffcv_write_dataset flow, a corrupt JPEG inside a .beton (counted and replaced, not fatal), and bench --loader.
source "$(dirname "$0")/lib.sh"
MKIF="$(dirname "$CTRAIN")/make-imagefolder"
D="$T/fm"
"$MKIF" fmnist "$D" --train 1200 --val 300 --min 40 --max 72 || fail "make-imagefolder failed"
[ "$(find "$D/train" -name '*.jpg' | wc -l)" -eq 1200 ] || fail "expected 1200 training JPEGs"

# convert: a progress/summary line, every sample written, labels 0..9 in folder order
out=$("$CTRAIN" convert "$D/train" "$D/train.beton" --write_mode proportion --max_resolution 64 --seed 3 2>&1) ||
  fail "convert failed: $out"
case "$out" in *"wrote $D/train.beton: 1200 samples"*"0 skipped"*) ;; *) fail "convert summary: $out" ;; esac
"$CTRAIN" convert "$D/val" "$D/val.beton" --write_mode jpg --quiet > /dev/null || fail "convert val failed"
expect_ok "RGBImage" "$CTRAIN" inspect "$D/train.beton"
expect_ok "values 0..9" "$CTRAIN" inspect "$D/train.beton"
n=$("$CTRAIN" inspect "$D/train.beton" --json | wc -l)
[ "$n" -eq 1201 ] || fail "inspect --json printed $n lines, expected a header and 1200 samples"
"$CTRAIN" inspect "$D/train.beton" --json | sed -n 2p | grep -q '"image":{"mode":"' || fail "inspect --json sample format"
# the same seed and options give the same file with any number of workers
"$CTRAIN" convert "$D/train" "$T/again.beton" --write_mode proportion --max_resolution 64 --seed 3 --num_workers 1 --quiet >/dev/null
cmp -s "$D/train.beton" "$T/again.beton" || fail "convert is not deterministic across worker counts"
expect_fail "write_mode 'zip'" "$CTRAIN" convert "$D/train" "$T/x.beton" --write_mode zip
expect_fail "no such file or folder" "$CTRAIN" convert "$T/nothing" "$T/x.beton"
[ -e "$T/x.beton" ] && fail "a failed convert left an output file"

cat > "$T/r.yaml" <<YAML
model: {resnet: {model_name: resnet18, width: 8, num_classes: 10}}
train_dataset: {imagenet: {use_ffcv: true, ffcv_dir: $D, ffcv_dest: train.beton, crop_size: 32, is_train: true}}
val_dataset: {imagenet: {use_ffcv: true, ffcv_dir: $D, ffcv_dest: val.beton, crop_size: 32, resize_size: 36,
              is_train: false, shuffle: false, drop_last: false}}
dataloader: {num_workers: 2, prefetch_factor: 2}
optimizers: {decoupled_sgdw: {lr: 0.4, momentum: 0.875, weight_decay: 5.0e-4}}
schedulers: {cosine_decay_with_warmup: {t_warmup: 5ba}}
max_duration: 3ep
train_batch_size: 64
eval_batch_size: 150
seed: 1
YAML
# 3 epochs of 1,200 images; chance is 0.10 and this reaches about 0.5
"$CTRAIN" train -f "$T/r.yaml" --run_dir "$T/run" --quiet > "$T/out.txt" 2>&1 || { cat "$T/out.txt"; fail "training from .beton failed"; }
top1=$(grep '"event":"eval"' "$T/run/metrics.jsonl" | tail -1 | sed -E 's/.*"top1":([^,]+),.*/\1/')
echo ".beton path: top1 $top1"
awk -v a="$top1" 'BEGIN { exit !(a >= 0.30) }' || fail "top1 $top1 from the .beton is below the bar of 0.30"

# the same run from the ImageFolder JPEGs (use_ffcv: false reads datadir/train and datadir/val)
"$CTRAIN" train -f "$T/r.yaml" --run_dir "$T/run2" --quiet --train_dataset.imagenet.use_ffcv false \
  --train_dataset.imagenet.datadir "$D" --val_dataset.imagenet.use_ffcv false --val_dataset.imagenet.datadir "$D" \
  --max_duration 1ep > "$T/out2.txt" 2>&1 || { cat "$T/out2.txt"; fail "training from the ImageFolder failed"; }
grep -q '"event":"eval"' "$T/run2/metrics.jsonl" || fail "no evaluation from the ImageFolder run"

# Composer's ffcv_write_dataset: the .beton is written from datadir when missing, then trained on
mkdir -p "$T/ffcv"
"$CTRAIN" train -f "$T/r.yaml" --run_dir "$T/run3" --quiet --max_duration 1ep \
  --train_dataset.imagenet.ffcv_dir "$T/ffcv" --train_dataset.imagenet.ffcv_dest imagenet_train.ffcv \
  --train_dataset.imagenet.ffcv_write_dataset --train_dataset.imagenet.datadir "$D" > "$T/out3.txt" 2>&1 ||
  { cat "$T/out3.txt"; fail "ffcv_write_dataset run failed"; }
[ -f "$T/ffcv/imagenet_train.ffcv" ] || fail "ffcv_write_dataset wrote no file"
grep -q "writing $T/ffcv/imagenet_train.ffcv from $D/train" "$T/out3.txt" || fail "ffcv_write_dataset said nothing"

# a corrupt JPEG inside the .beton: counted, replaced, reported; the run goes on (the evaluation set reads
# every sample in order, so sample 4 is certainly read)
"$CTRAIN" convert "$D/train" "$T/bad.beton" --write_mode jpg --quiet > /dev/null
ptr=$("$CTRAIN" inspect "$T/bad.beton" --json | sed -n 6p | sed -E 's/.*"data_ptr":([0-9]+).*/\1/')
printf 'this is not JPEG data, it overwrites the entropy-coded segment' |
  dd of="$T/bad.beton" bs=1 seek=$((ptr + 2)) conv=notrunc status=none
"$CTRAIN" train -f "$T/r.yaml" --run_dir "$T/run4" --max_duration 1ep --val_dataset.imagenet.ffcv_dir "$T" \
  --val_dataset.imagenet.ffcv_dest bad.beton > "$T/out4.txt" 2>&1 || { cat "$T/out4.txt"; fail "a corrupt sample was fatal"; }
grep -q "val_dataset: 1 corrupt sample replaced by other samples (first: $T/bad.beton sample 4" "$T/out4.txt" ||
  fail "the corrupt sample was not reported: $(grep -i corrupt "$T/out4.txt")"
grep -q '"event":"corrupt_samples"' "$T/run4/metrics.jsonl" || fail "no corrupt_samples event in metrics.jsonl"

# bench --loader: the fields other tools read
out=$("$CTRAIN" bench --loader "$D/train.beton" --res 32 --batch 32 --num_workers 2 --epochs 1 --json 2>&1) ||
  fail "bench --loader failed: $out"
for k in images_per_s num_workers res; do
  case "$out" in *"\"$k\""*) ;; *) fail "bench --loader --json lacks $k: $out" ;; esac
done
expect_ok "images/s" "$CTRAIN" bench --loader "$D/train" --res 32 --batch 32 --epochs 1
finish
