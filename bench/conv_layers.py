#!/usr/bin/env python3
"""conv_layers.py — where the CPU step's convolution time goes, layer shape by layer shape.

Runs `ctrain bench` with oneDNN's verbose mode (ONEDNN_VERBOSE=1 prints every primitive's kernel and time),
groups the convolution calls by shape and pass, and prints the time per step, the GFLOP/s and the time lost
against a GFLOP/s peak (by default bench/gemm_peak.py's yardstick for this machine, given with --peak),
worst first. It is how the slow kernels in docs/performance.md were found.

    bench/conv_layers.py [--peak 130] [--top 25] -- --model resnet50 --batch 32 --res 176 --threads 2

Everything after -- goes to `ctrain bench` (--steps and --warmup default to 2 and 1 here). Needs build/ctrain.
"""
import argparse
import collections
import os
import re
import subprocess
import sys

SHAPE = re.compile(r"mb(\d+)_ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)sh(\d+)dh\d+ph(\d+)_iw(\d+)ow(\d+)kw(\d+)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peak", type=float, default=0.0, help="GFLOP/s to measure losses against (0: no losses)")
    ap.add_argument("--top", type=int, default=25, help="rows to print")
    ap.add_argument("bench_args", nargs="*", help="arguments of ctrain bench, after --")
    a = ap.parse_args()
    args = a.bench_args
    if "--steps" not in args:
        args += ["--steps", "2"]
    if "--warmup" not in args:
        args += ["--warmup", "1"]
    runs = int(args[args.index("--steps") + 1]) + int(args[args.index("--warmup") + 1])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    out = subprocess.run([os.path.join(root, "build", "ctrain"), "bench"] + args, env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        sys.exit("conv_layers.py: ctrain bench failed: " + (out.stderr.strip().splitlines() or ["?"])[-1])
    agg = collections.defaultdict(lambda: [0.0, 0.0])  # (impl, pass, shape) -> [ms, flop] over all runs
    for line in out.stdout.splitlines():
        f = line.split(",")
        if len(f) < 6 or f[1] != "exec" or f[3] != "convolution":
            continue
        m = SHAPE.match(f[-2])
        if not m:
            continue
        mb, ic, oc, ih, oh, kh, sh, ph, iw, ow, kw = map(int, m.groups())
        key = (f[4], f[5], f[-2])
        agg[key][0] += float(f[-1])
        agg[key][1] += 2.0 * mb * ic * oc * oh * ow * kh * kw
    rows = []
    for (impl, kind, shape), (ms, flop) in agg.items():
        ms, flop = ms / runs, flop / runs
        lost = ms - flop / (a.peak * 1e6) if a.peak > 0 else 0.0
        rows.append((lost if a.peak > 0 else ms, ms, flop / ms / 1e6, impl, kind, shape))
    rows.sort(reverse=True)
    total = sum(r[1] for r in rows)
    step = [ln for ln in out.stdout.splitlines() if "ms/step" in ln]
    print("# " + (step[-1] if step else "ctrain bench"))
    print("# convolutions: %.0f ms per step over %d shape x pass%s" %
          (total, len(rows), ", %.0f ms lost against %.1f GFLOP/s" % (sum(r[0] for r in rows), a.peak)
           if a.peak > 0 else ""))
    print("%8s %8s %7s  %-14s %-17s %s" % ("lost ms" if a.peak > 0 else "", "ms/step", "GFLOP/s", "kernel", "pass",
                                          "shape"))
    for r in rows[:a.top]:
        print("%8s %8.1f %7.1f  %-14s %-17s %s" % ("%.1f" % r[0] if a.peak > 0 else "", r[1], r[2], r[3], r[4],
                                                  r[5]))


if __name__ == "__main__":
    main()
