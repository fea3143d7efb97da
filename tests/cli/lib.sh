# lib.sh — helpers for the CLI tests: each test script gets the ctrain binary as $1, a fresh temp folder in $T,
# and these checks. A failed check prints what was expected and what came out, and exits 1.
set -u
CTRAIN="$1"
T=$(mktemp -d "${TMPDIR:-/tmp}/ctrain-cli-XXXXXX")
SHARED="${CTRAIN_SHARED:-$(dirname "$0")/../../../shared}"
SRC="${CTRAIN_SRC:-$(dirname "$0")/../..}"
FAILS=0

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

# expect_fail SUBSTRING CMD...: the command exits non-zero and its output contains SUBSTRING.
expect_fail() {
  local want="$1"; shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then fail "expected failure of: $* (output: $out)"; return; fi
  case "$out" in *"$want"*) ;; *) fail "output of '$*' lacks '$want': $out" ;; esac
}

# expect_ok SUBSTRING CMD...: the command succeeds and its output contains SUBSTRING.
expect_ok() {
  local want="$1"; shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ]; then fail "'$*' exited $rc: $out"; return; fi
  case "$out" in *"$want"*) ;; *) fail "output of '$*' lacks '$want': $out" ;; esac
}

# The loss values of the batch events of a metrics.jsonl, one per line, as written (full precision).
losses() { grep '"event":"batch"' "$1" | sed -E 's/.*"batch":([0-9]+),.*"loss":([^,]+),.*/\1 \2/'; }

# A small recipe: a CIFAR-style ResNet-8 (width 8) on a subset of Fashion-MNIST.
small_recipe() {
  cat > "$1" <<YAML
model: {resnet: {model_name: resnet8, width: 8, num_classes: 10}}
train_dataset: {idx: {is_train: true}}
val_dataset: {idx: {is_train: false, shuffle: false, drop_last: false}}
optimizers: {sgd: {lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}}
schedulers: {cosine_decay_with_warmup: {t_warmup: 5ba}}
max_duration: 2ep
train_batch_size: 32
eval_batch_size: 500
train_subset_num_batches: 6
eval_subset_num_batches: 1
seed: 7
YAML
}

# top1 RUN_DIR: the last evaluation's top-1 accuracy in the run's metrics.jsonl
top1() { grep '"event":"eval"' "$1/metrics.jsonl" | tail -1 | sed -E 's/.*"top1":([0-9.e-]+).*/\1/'; }
# bar NAME RUN_DIR MIN: the run's final top-1 is at least MIN (prints it)
bar() {
  local a
  a=$(top1 "$2")
  if [ -z "$a" ]; then fail "$1: no evaluation in $2/metrics.jsonl"; return; fi
  awk -v a="$a" -v m="$3" 'BEGIN { exit !(a >= m) }' || fail "$1: top1 $a is below the bar $3"
  echo "$1: top1 $a (bar $3)"
}

finish() {
  rm -rf "$T"
  if [ $FAILS -ne 0 ]; then echo "$FAILS check(s) failed" >&2; exit 1; fi
  echo "all checks passed"
  exit 0
}
