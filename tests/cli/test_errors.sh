#!/usr/bin/env bash
# test_errors.sh — every bad input ends in one clear line naming the file/key and a non-zero exit:
# bad YAML, unknown keys and flags, missing files, a wrong-shaped checkpoint, a diverging run; and the
# Composer recipes resolve as Composer resolves them.
source "$(dirname "$0")/lib.sh"
R="$SHARED/reference/composer-recipes"

# usage and help
expect_ok "usage: ctrain <command>" "$CTRAIN" --help
expect_ok "ctrain 0." "$CTRAIN" --version
for c in train eval predict bench; do expect_ok "usage: ctrain $c" "$CTRAIN" $c --help; done
expect_fail "unknown command 'trian'" "$CTRAIN" trian
expect_fail "no recipe" "$CTRAIN" train

# recipes: missing, bad YAML, unknown key with line and suggestion, unknown override, bad value
expect_fail "$T/none.yaml: cannot open recipe" "$CTRAIN" train -f "$T/none.yaml"
printf 'model:\n  resnet: {model_name: resnet8\nmax_duration: 1ep\n' > "$T/bad.yaml"
expect_fail "$T/bad.yaml:" "$CTRAIN" train -f "$T/bad.yaml"
small_recipe "$T/small.yaml"
printf 'model: {resnet: {model_name: resnet8}}\ntrain_dataset: {idx: {}}\nmax_duraton: 2ep\n' > "$T/typo.yaml"
expect_fail "$T/typo.yaml:3: unknown key 'max_duraton'; did you mean 'max_duration'?" "$CTRAIN" train -f "$T/typo.yaml"
expect_fail "--scale_schedul_ratio: unknown option; did you mean --scale_schedule_ratio?" \
  "$CTRAIN" train -f "$T/small.yaml" --scale_schedul_ratio 0.5
expect_fail "expected a number" "$CTRAIN" train -f "$T/small.yaml" --optimizers.sgd.lr fast
expect_fail "unknown model 'resnet21'" "$CTRAIN" train -f "$T/small.yaml" --model.resnet.model_name resnet21
expect_fail "unknown device 'tpu'" "$CTRAIN" train -f "$T/small.yaml" --device tpu --run_dir "$T/r0"
# without a GPU (or a CUDA build) --device cuda names the reason and the way out
expect_fail "use --device cpu" "$CTRAIN" train -f "$T/small.yaml" --device cuda --run_dir "$T/r0"

# missing data files name the path
expect_fail "/nonexistent/fm/train-images-idx3-ubyte" \
  "$CTRAIN" train -f "$T/small.yaml" --train_dataset.idx.datadir /nonexistent/fm --run_dir "$T/r0"

# the seed's command line: mild at SSR 0.36 = 32 epochs x 625 batches, warmup 5000 batches; the recipe asks for
# a GPU, and without one ctrain says how to run it anyway
out=$("$CTRAIN" train -f "$R/resnet50_mild.yaml" --scale_schedule_ratio 0.36 --train_dataset.imagenet.ffcv_dir /x \
      --val_dataset.imagenet.ffcv_dir /x --run_dir "$T/r0" 2>&1); rc=$?
[ $rc -ne 0 ] || fail "mild should stop: there is no GPU here"
case "$out" in *"max_duration 32ep (90ep x scale_schedule_ratio 0.36), 625 batches/epoch"*) ;;
  *) fail "mild at SSR 0.36 did not resolve to 32 epochs of 625 batches: $out" ;; esac
case "$out" in *"warmup 5000 batches"*) ;; *) fail "mild warmup is not 5000 batches: $out" ;; esac
case "$out" in *"ctrain train: device '"*"; use --device cpu"*) ;;
  *) fail "mild without a GPU did not point at --device cpu: $out" ;; esac
# on the CPU every part of mild is accepted; what stops it is the missing dataset, named with the fix
out=$("$CTRAIN" train -f "$R/resnet50_mild.yaml" --scale_schedule_ratio 0.36 --train_dataset.imagenet.ffcv_dir /x \
      --val_dataset.imagenet.ffcv_dir /x --run_dir "$T/r_mild" --device cpu 2>&1); rc=$?
[ $rc -ne 0 ] || fail "mild without data should stop"
case "$out" in *"/x/imagenet_train.ffcv not found"*) ;; *) fail "mild did not name the missing dataset: $out" ;; esac
[ ! -e "$T/r_mild" ] || fail "a run that never started left a run folder"
case "$out" in *"note: dataloader.pin_memory"*) ;; *) fail "meaningless keys are not reported: $out" ;; esac

# every Composer recipe file loads and resolves (the dump stops before reading data)
for f in "$R"/*.yaml; do
  expect_ok "schedule: max_duration" "$CTRAIN" train -f "$f" --dump
done
expect_ok "max_duration 270ep" "$CTRAIN" train -f "$R/resnet50_spicy.yaml" --dump
expect_ok "max_duration 28ep" "$CTRAIN" train -f "$R/mlperf-v2.0-methods.yaml" --dump

# algorithm options ctrain does not implement are refused, not ignored
expect_fail "resize_targets: true is not implemented in ctrain" \
  "$CTRAIN" train -f "$T/small.yaml" --algorithms.progressive_resizing.resize_targets true --run_dir "$T/r0"
expect_fail "target_layer_name: ctrain implements ResNetBottleneck and ResNetBasicBlock" \
  "$CTRAIN" train -f "$T/small.yaml" --algorithms.stochastic_depth.target_layer_name Foo --run_dir "$T/r0"
[ ! -e "$T/r0" ] || fail "a refused recipe left a run folder"

# a diverging run stops with a clear line and writes no checkpoint
expect_fail "the training loss became" "$CTRAIN" train -f "$T/small.yaml" --optimizers.sgd.lr 1e30 \
  --save_folder "$T/nan_ck" --run_dir "$T/r_nan" --quiet
[ -z "$(ls "$T/nan_ck" 2>/dev/null)" ] || fail "a diverged run left checkpoints: $(ls "$T/nan_ck")"

# a checkpoint for another head: the shapes are named, and load_ignore_keys lets it fine-tune
expect_ok "done:" "$CTRAIN" train -f "$T/small.yaml" --max_duration 1ep --save_folder "$T/ck" --run_dir "$T/r1" --quiet
W="$T/ck/latest.safetensors"
[ -f "$W" ] || fail "no checkpoint at $W"
expect_fail "'fc.weight' has shape [10, 32] but the model expects [12, 32]" \
  "$CTRAIN" train -f "$T/small.yaml" --model.resnet.num_classes 12 --load_path "$W" --run_dir "$T/r2"
expect_fail "'fc.weight' has shape [10, 32] but the model expects [12, 32]" \
  "$CTRAIN" eval -f "$T/small.yaml" --model.resnet.num_classes 12 --load "$W"
expect_fail "num_classes is 5 but train_dataset has labels up to 9" \
  "$CTRAIN" train -f "$T/small.yaml" --model.resnet.num_classes 5 --run_dir "$T/r2"
expect_ok "done:" "$CTRAIN" train -f "$T/small.yaml" --model.resnet.num_classes 12 --load_path "$W" \
  --load_weights_only --load_ignore_keys fc.weight fc.bias --max_duration 1ep --run_dir "$T/r3" --quiet
printf 'not a checkpoint' > "$T/junk.safetensors"
expect_fail "$T/junk.safetensors: not a valid safetensors file" "$CTRAIN" eval -f "$T/small.yaml" --load "$T/junk.safetensors"
expect_fail "load_path $T/missing.safetensors: no such file" \
  "$CTRAIN" train -f "$T/small.yaml" --load_path "$T/missing.safetensors" --run_dir "$T/r4"

finish
