#!/usr/bin/env python3
"""conv_layers.py — where the CPU step's convolution time goes, layer shape by layer shape.

Runs `ctrain bench` with oneDNN's verbose mode (ONEDNN_VERBOSE=1 prints every primitive's kernel and time),
groups the convolution calls by shape and pass, and prints the time per step, the GFLOP/s and the time lost
against a GFLOP/s peak (by default bench/gemm_peak.py's yardstick for this machine, given with --peak),
worst first. It is how the slow kernels in docs/performance.md were found. The passes ctrain runs by Winograd
(src/backend/cpu/winograd.c, winograd_bf16.c) do not go through oneDNN and are not listed; --conv direct (a
ctrain bench argument) puts every convolution on oneDNN.

    bench/conv_layers.py [--peak 130] [--top 25] [--impls 7] -- --model resnet50 --batch 32 --res 176 --threads 2

Everything after -- goes to `ctrain bench` (--steps and --warmup default to 2 and 1 here). Needs build/ctrain.
With --impls ROUNDS it then times every oneDNN implementation of each listed row with build/conv-impls (ROUNDS
interleaved rounds, on the bench's --threads; in bf16 with --precision bf16) and adds the fastest one, its
median time over that of the kernel ctrain ran, and the time per step it would save: how to check ctrain's
kernel rules (cpu_conv.c, impl_rank) on another CPU.
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
    ap.add_argument("--impls", type=int, default=0, help="time every implementation of each row in this many rounds")
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
    if a.impls > 0:
        print_impls(rows[:a.top], a.impls, args, root)
        return
    print("%8s %8s %7s  %-14s %-17s %s" % ("lost ms" if a.peak > 0 else "", "ms/step", "GFLOP/s", "kernel", "pass",
                                          "shape"))
    for r in rows[:a.top]:
        print("%8s %8.1f %7.1f  %-14s %-17s %s" % ("%.1f" % r[0] if a.peak > 0 else "", r[1], r[2], r[3], r[4],
                                                  r[5]))


PASSES = {"forward_training": 0, "backward_data": 1, "backward_weights": 2}


def print_impls(rows, rounds, args, root):
    """Times every implementation of each row with conv-impls; prints the fastest beside ctrain's kernel."""
    threads = args[args.index("--threads") + 1] if "--threads" in args else str(os.cpu_count())
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    words = ["bf16"] if "--precision" in args and args[args.index("--precision") + 1] == "bf16" else []
    print("%8s %-14s %-17s %-22s %6s %8s  %s" % ("ms/step", "kernel", "pass", "fastest", "x", "saves ms", "shape"))
    saved = 0.0
    for r in rows:
        m = SHAPE.match(r[5])
        mb, ic, oc, ih, oh, kh, sh, ph, iw, ow, kw = map(int, m.groups())
        if ih != iw or kh != kw or r[4] not in PASSES:
            continue
        cmd = [os.path.join(root, "build", "conv-impls")] + [str(v) for v in (mb, ih, ic, oc, kh, sh, ph)]
        out = subprocess.run(cmd + [str(PASSES[r[4]]), str(rounds)] + words, env=env, capture_output=True,
                             text=True)
        med = {}
        for line in out.stdout.splitlines():
            f = re.match(r".*?\s(\S+)\s+([0-9.]+) ms \(fastest", line)
            if f:
                med[f.group(1)] = float(f.group(2))
        if r[3] not in med:
            print("%8.1f %-14s %-17s %-22s %6s %8s  %s" % (r[1], r[3], r[4], "(not timed)", "", "", r[5]))
            continue
        best = min(med, key=med.get)
        ratio = med[best] / med[r[3]]
        save = r[1] * (1.0 - ratio)
        saved += save
        print("%8.1f %-14s %-17s %-22s %6.2f %8.1f  %s" % (r[1], r[3], r[4], best, ratio, save, r[5]))
    print("# the fastest implementations would save %.0f ms per step over these rows" % saved)


if __name__ == "__main__":
    main()
