#!/usr/bin/env bash
# test_resume.sh — a resumed run gives the same losses and weights, bit for bit, as one that never stopped:
# through load_path (a checkpoint and its .state) and through autoresume (save_folder/latest).
source "$(dirname "$0")/lib.sh"
small_recipe "$T/small.yaml"
run() { "$CTRAIN" train -f "$T/small.yaml" --quiet "$@" > "$T/out.txt" 2>&1 || { cat "$T/out.txt" >&2; fail "run failed: $*"; }; }

# A: two epochs straight through, a checkpoint after each; grad_accum 2 exercises accumulation too
run --save_folder "$T/A_ck" --run_dir "$T/A" --grad_accum 2
ls "$T/A_ck" | grep -q '^ep1-ba6.safetensors$' || fail "no ep1-ba6 checkpoint: $(ls "$T/A_ck")"
ls "$T/A_ck" | grep -q '^ep2-ba12.state$' || fail "no ep2-ba12 state: $(ls "$T/A_ck")"
[ "$(readlink "$T/A_ck/latest.safetensors")" = "ep2-ba12.safetensors" ] || fail "latest does not point at ep2-ba12"

# B: resume from A's epoch-1 checkpoint (weights + state) and finish
run --save_folder "$T/B_ck" --run_dir "$T/B" --grad_accum 2 --load_path "$T/A_ck/ep1-ba6.safetensors"
cmp -s "$T/A_ck/ep2-ba12.safetensors" "$T/B_ck/ep2-ba12.safetensors" || fail "resumed weights differ from the uninterrupted run"
cmp -s "$T/A_ck/ep2-ba12.state" "$T/B_ck/ep2-ba12.state" || fail "resumed optimizer state differs"
losses "$T/A/metrics.jsonl" | awk '$1 > 6' > "$T/a_losses"
losses "$T/B/metrics.jsonl" > "$T/b_losses"
[ "$(wc -l < "$T/b_losses")" -eq 6 ] || fail "resumed run trained $(wc -l < "$T/b_losses") batches, expected 6"
cmp -s "$T/a_losses" "$T/b_losses" || fail "losses after resuming differ: $(paste "$T/a_losses" "$T/b_losses")"

# C: autoresume finds save_folder/latest (copied from A at epoch 1) and continues
mkdir -p "$T/C_ck"
cp "$T/A_ck/ep1-ba6.safetensors" "$T/A_ck/ep1-ba6.state" "$T/C_ck/"
ln -s ep1-ba6.safetensors "$T/C_ck/latest.safetensors"
ln -s ep1-ba6.state "$T/C_ck/latest.state"
run --save_folder "$T/C_ck" --run_dir "$T/C" --grad_accum 2 --autoresume --run_name c
cmp -s "$T/A_ck/ep2-ba12.safetensors" "$T/C_ck/ep2-ba12.safetensors" || fail "autoresumed weights differ"
grep -q "resuming training state" "$T/out.txt" || fail "autoresume did not say it resumed: $(cat "$T/out.txt")"

# D: the same seed twice gives the same bits; a different seed does not
run --run_dir "$T/D1" --max_duration 1ep
run --run_dir "$T/D2" --max_duration 1ep
cmp -s <(losses "$T/D1/metrics.jsonl") <(losses "$T/D2/metrics.jsonl") || fail "same seed, different losses"
run --run_dir "$T/D3" --max_duration 1ep --seed 8
cmp -s <(losses "$T/D1/metrics.jsonl") <(losses "$T/D3/metrics.jsonl") && fail "a different seed gave the same losses"

# F: the same with Composer's algorithms that carry state or randomness across the resume: EMA's shadow weights
# (in the .state), MixUp's and stochastic depth's draws, SAM's step counter, progressive resizing's schedule
cp "$T/small.yaml" "$T/algos.yaml"
cat >> "$T/algos.yaml" <<YAML
algorithms:
  - blurpool: {min_channels: 8}
  - ema: {half_life: 4ba, update_interval: 2ba}
  - label_smoothing: {smoothing: 0.1}
  - mixup: {alpha: 0.2}
  - progressive_resizing: {initial_scale: 0.5, delay_fraction: 0.0, finetune_fraction: 0.5}
  - sam: {rho: 0.05, interval: 2}
  - stochastic_depth: {target_layer_name: ResNetBasicBlock, drop_rate: 0.3}
YAML
runa() { "$CTRAIN" train -f "$T/algos.yaml" --quiet "$@" > "$T/out.txt" 2>&1 || { cat "$T/out.txt" >&2; fail "run failed: $*"; }; }
runa --save_folder "$T/F_ck" --run_dir "$T/F"
runa --save_folder "$T/G_ck" --run_dir "$T/G" --load_path "$T/F_ck/ep1-ba6.safetensors"
cmp -s "$T/F_ck/ep2-ba12.safetensors" "$T/G_ck/ep2-ba12.safetensors" || fail "with algorithms: resumed weights differ"
cmp -s "$T/F_ck/ep2-ba12.state" "$T/G_ck/ep2-ba12.state" || fail "with algorithms: resumed state (EMA) differs"
cmp -s <(losses "$T/F/metrics.jsonl" | awk '$1 > 6') <(losses "$T/G/metrics.jsonl") ||
  fail "with algorithms: losses after resuming differ"
fe=$(grep '"event":"eval"' "$T/F/metrics.jsonl" | tail -1 | sed -E 's/.*"top1":([^,]+),.*/\1/')
ge=$(grep '"event":"eval"' "$T/G/metrics.jsonl" | tail -1 | sed -E 's/.*"top1":([^,]+),.*/\1/')
[ -n "$fe" ] && [ "$fe" = "$ge" ] || fail "with algorithms: the resumed run's EMA evaluation differs ($fe vs $ge)"

# save_num_checkpoints_to_keep keeps the newest
run --save_folder "$T/E_ck" --run_dir "$T/E" --save_interval 2ba --save_num_checkpoints_to_keep 2
n=$(ls "$T/E_ck" | grep -c '^ep.*\.safetensors$')
[ "$n" -eq 2 ] || fail "kept $n checkpoints, expected 2: $(ls "$T/E_ck")"
ls "$T/E_ck" | grep -q '^ep2-ba12.safetensors$' || fail "the newest checkpoint was not kept: $(ls "$T/E_ck")"
ls -a "$T/E_ck" | grep -q 'tmp' && fail "temporary files left behind: $(ls -a "$T/E_ck")"

# the saved weights load into the same model for evaluation, giving the run's final accuracy
final=$(grep '"event":"eval"' "$T/A/metrics.jsonl" | tail -1 | sed -E 's/.*"top1":([^,]+),.*/\1/')
got=$("$CTRAIN" eval -f "$T/small.yaml" --load "$T/A_ck/ep2-ba12.safetensors" --json | sed -E 's/.*"top1": ([^,]+),.*/\1/')
awk -v a="$final" -v b="$got" 'BEGIN { exit !(a - b < 1e-6 && b - a < 1e-6) }' || fail "eval top1 $got != the run's $final"

finish
