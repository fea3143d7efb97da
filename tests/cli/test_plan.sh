# test_plan.sh — `ctrain plan`: the schedule a recipe resolves to (epochs, steps, warmup, algorithm order,
# per-epoch resolution and learning rate), checked against Composer's formulas computed here independently.
. "$(dirname "$0")/lib.sh"
R="$SHARED/reference/composer-recipes"

# plan_rows FILE: "epoch res lr_start lr_end" rows of the plan's table
plan_rows() { awk '/^ +epoch +res/ {t = 1; next} t && NF == 4 {print}' "$1"; }

# the seed's command: Mild at SSR 0.36 on ImageNet (1281167 images, batch 2048)
"$CTRAIN" plan -f "$R/resnet50_mild.yaml" --scale_schedule_ratio 0.36 --train_size 1281167 > "$T/mild.txt" 2>&1 ||
  fail "plan mild exited non-zero: $(cat "$T/mild.txt")"
grep -q "32 epochs x 625 steps = 20000 batches; warmup 5000 batches" "$T/mild.txt" ||
  fail "mild at SSR 0.36 is not 32 x 625 = 20000 batches with 5000 warmup: $(cat "$T/mild.txt")"
grep -q "algorithms, in run order: blurpool channels_last ema label_smoothing progressive_resizing" "$T/mild.txt" ||
  fail "mild's algorithms are not listed in recipe order: $(cat "$T/mild.txt")"
grep -q "ema: smoothing 0.8705506 every 20 batches" "$T/mild.txt" || fail "mild's EMA is not 2^-0.2 every 20 batches"
[ "$(plan_rows "$T/mild.txt" | wc -l)" -eq 32 ] || fail "mild's table does not have 32 epochs"

# progressive resizing (Composer 0.9): f = epoch/32, s = clamp((f - 0.4)/(1 - 0.2 - 0.4), 0, 1),
# size = round_half_even(176 * (0.5 + 0.5 s) / 4) * 4; warmup lr = 2.048 * batch/5000, cosine after
plan_rows "$T/mild.txt" | awk '
  function rhe(x,  f, d) { f = int(x); d = x - f; if (d > 0.5) return f + 1; if (d < 0.5) return f; return f % 2 ? f + 1 : f }
  function lr(t) { if (t < 5000) return 2.048 * t / 5000; return 2.048 * (1 + cos(3.141592653589793 * (t - 5000) / 15000)) / 2 }
  { f = $1 / 32; s = (f - 0.4) / 0.4; if (s < 0) s = 0; if (s > 1) s = 1
    want = rhe(176 * (0.5 + 0.5 * s) / 4) * 4
    if ($2 != want) { printf "epoch %d: res %d, Composer gives %d\n", $1, $2, want; bad = 1 }
    a = lr($1 * 625); b = lr($1 * 625 + 624)
    if ($3 - a > 1e-4 || a - $3 > 1e-4 || $4 - b > 1e-4 || b - $4 > 1e-4) {
      printf "epoch %d: lr %s..%s, Composer gives %g..%g\n", $1, $3, $4, a, b; bad = 1 } }
  END { exit bad }' > "$T/mild_diff.txt" || fail "mild's per-epoch plan differs: $(cat "$T/mild_diff.txt")"

# the JSON form carries the same numbers
"$CTRAIN" plan -f "$R/resnet50_mild.yaml" --scale_schedule_ratio 0.36 --train_size 1281167 --json > "$T/mild.json" \
  2>/dev/null || fail "plan --json exited non-zero"
grep -q '"total_batches":[[:space:]]*20000' "$T/mild.json" || fail "plan --json lacks total_batches 20000"
[ "$(grep -c '"train_res"' "$T/mild.json")" -eq 32 ] || fail "plan --json does not list 32 epochs"

# Medium: SAM every 10th step; Spicy/Hot: initial scale 0.6 -> 104 px, SAM every 5th, sample stochastic depth
expect_ok "sam: rho 0.5 on every 10th step (steps 9, 19, ...): 8437 of 84375 steps" \
  "$CTRAIN" plan -f "$R/resnet50_medium.yaml" --train_size 1281167
"$CTRAIN" plan -f "$R/resnet50_spicy.yaml" --train_size 1281167 > "$T/spicy.txt" 2>&1 || fail "plan spicy failed"
[ "$(plan_rows "$T/spicy.txt" | head -1 | awk '{print $2}')" = 104 ] || fail "spicy does not start at 104 px"
grep -q "stochastic_depth" "$T/spicy.txt" || fail "spicy's plan does not list stochastic_depth"

# ctrain's own recipes all plan; without the data at hand the ImageNet size is assumed, and the plan says so
for f in "$SRC"/recipes/*.yaml; do
  "$CTRAIN" plan -f "$f" > "$T/p.txt" 2>&1 || fail "plan $f failed: $(cat "$T/p.txt")"
done
expect_ok "(ImageNet-1k's: the data is not at hand; --train_size N sets it)" \
  "$CTRAIN" plan -f "$R/resnet50_mild.yaml"
"$CTRAIN" plan -f "$SRC/recipes/fmnist_mild.yaml" > "$T/fm.txt" 2>&1
grep -q "60000 training samples, batch 128" "$T/fm.txt" || fail "fmnist_mild does not read the data's size"
grep -q "not at hand" "$T/fm.txt" && fail "fmnist_mild's size is marked as assumed"
grep -q "batch 128 (1 micro-batches)" "$T/fm.txt" || fail "fmnist_mild's micro-batches: $(head -1 "$T/fm.txt")"
expect_ok "batch 128 (micro-batches: auto, decided when training starts)" \
  "$CTRAIN" plan -f "$SRC/recipes/fmnist_mild.yaml" --grad_accum auto

# bad input: a clear one-line error and a non-zero exit
expect_fail "cannot open recipe" "$CTRAIN" plan -f "$T/none.yaml"
expect_fail "train_size" "$CTRAIN" plan -f "$R/resnet50_mild.yaml" --train_size 0
finish
