"""The machine's fp32 GEMM peak, the yardstick of bench/cpu_step.sh: the best of several 4096 x 4096 x 4096
single-precision matrix products through numpy (OpenBLAS) and through PyTorch (oneDNN/MKL), on THREADS threads.
usage: THREADS=2 python3 bench/gemm_peak.py      prints: gemm_gflops=<best> numpy=<...> torch=<...>"""
import os
import sys
import time

threads = os.environ.get("THREADS", "2")
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = threads
import numpy as np  # noqa: E402 (after the thread variables)

N, REPS = 4096, 5


def best_gflops(mm):
    mm()  # warm-up: page faults, thread start
    best = 0.0
    for _ in range(REPS):
        t = time.perf_counter()
        mm()
        best = max(best, 2.0 * N**3 / (time.perf_counter() - t) / 1e9)
    return best


rng = np.random.default_rng(0)
a = rng.standard_normal((N, N), dtype=np.float32)
b = rng.standard_normal((N, N), dtype=np.float32)
c = np.empty((N, N), dtype=np.float32)
results = {"numpy": best_gflops(lambda: np.matmul(a, b, out=c))}
try:
    import torch

    torch.set_num_threads(int(threads))
    ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.empty(N, N)
    results["torch"] = best_gflops(lambda: torch.mm(ta, tb, out=tc))
except ImportError:
    print("note: no torch: the peak is numpy's alone", file=sys.stderr)
print(f"gemm_gflops={max(results.values()):.1f} " + " ".join(f"{k}={v:.1f}" for k, v in results.items()))
