#!/usr/bin/env python3
"""winograd_bf16_error.py — how much rounding a bf16 Winograd convolution would add (docs/performance.md).

A bf16 Winograd kernel would round the transformed input tiles V = B^T d B and the transformed weights
U = G g G^T to bf16 before the tile products (AVX512_BF16 dot products accumulate in fp32). This computes, in
float64 apart from those roundings, a 3x3 stride-1 pad-1 convolution of a ReLU output (N x C x H x H) with
He-initialized weights by F(2x2, 3x3), F(3x3, 3x3) and F(4x4, 3x3), and prints each one's error against the exact
convolution beside that of a direct convolution on bf16-rounded inputs (what oneDNN's bf16 kernels compute):
the relative error in the 2-norm and the largest error over the largest output.

    tools/winograd_bf16_error.py [--channels 64] [--size 16] [--batch 4] [--seed 0]

Needs python3 with torch (CPU).
"""
import argparse
import fractions

import torch


def bf16(t):
    return t.to(torch.bfloat16).to(torch.float64)


def matrices(m):
    """B^T, G, A^T of F(m x m, 3 x 3) as winograd.c uses them (points 0, +-1, [+-2,] infinity)."""
    f = lambda rows: torch.tensor(rows, dtype=torch.float64)
    if m == 2:
        return (f([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
                f([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]),
                f([[1, 1, 1, 0], [0, 1, -1, -1]]))
    return (f([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]),
            f([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
            f([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]))


def cook_toom(m, points):
    """B^T, G, A^T of F(m x m, 3 x 3) from m + 1 finite points and infinity (Lavin and Gray's construction)."""
    pts = [fractions.Fraction(p) for p in points]
    n = m + 2

    def times(a, b):  # product of two polynomials, coefficients lowest first
        c = [fractions.Fraction(0)] * (len(a) + len(b) - 1)
        for i, u in enumerate(a):
            for j, v in enumerate(b):
                c[i + j] += u * v
        return c

    def prod(skip):  # prod over the points but skip of (x - p)
        c = [fractions.Fraction(1)]
        for k, q in enumerate(pts):
            if k != skip:
                c = times(c, [-q, 1])
        return c

    at = [[p ** i for p in pts] + [1 if i == m - 1 else 0] for i in range(m)]
    g = []
    for j, p in enumerate(pts):
        den = 1
        for k, q in enumerate(pts):
            if k != j:
                den *= p - q
        g.append([p ** i / den for i in range(3)])
    g.append([0, 0, 1])
    bt = [prod(j) + [0] * (n - len(prod(j))) for j in range(len(pts))] + [prod(-1)]
    f = lambda rows: torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)
    return f(bt), f(g), f(at)


def winograd(x, w, m, round_v, round_u, mats=None):
    """conv2d(x, w, padding=1) by F(m x m, 3 x 3) (winograd.c's matrices, or mats), V and/or U rounded to bf16."""
    bt, g, at = mats if mats is not None else matrices(m)
    a, (n, _, h, _) = m + 2, x.shape
    tiles = (h + m - 1) // m
    xp = torch.nn.functional.pad(x, (1, tiles * m - h + 1, 1, tiles * m - h + 1))
    u = torch.einsum('ij,ocjk,lk->ocil', g, w, g)
    if round_u:
        u = bf16(u)
    out = torch.zeros(n, w.shape[0], tiles * m, tiles * m, dtype=torch.float64)
    for ti in range(tiles):
        for tj in range(tiles):
            v = torch.einsum('ij,ncjk,lk->ncil', bt, xp[:, :, ti * m:ti * m + a, tj * m:tj * m + a], bt)
            if round_v:
                v = bf16(v)
            mm = torch.einsum('ncil,ocil->noil', v, u)
            out[:, :, ti * m:ti * m + m, tj * m:tj * m + m] = torch.einsum('ij,nojk,lk->noil', at, mm, at)
    return out[:, :, :h, :h]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--channels', type=int, default=64)
    ap.add_argument('--size', type=int, default=16)
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    c = args.channels
    x = torch.relu(torch.randn(args.batch, c, args.size, args.size, dtype=torch.float64))
    w = torch.randn(c, c, 3, 3, dtype=torch.float64) * (2 / (9 * c)) ** 0.5
    exact = torch.nn.functional.conv2d(x, w, padding=1)

    def report(name, y):
        rel = ((y - exact).norm() / exact.norm()).item()
        big = ((y - exact).abs().max() / exact.abs().max()).item()
        print(f'{name:<34} relative error {rel:.2e}   largest error / largest output {big:.2e}')

    print(f'# {args.batch} x {c} x {args.size} x {args.size} ReLU input, {c} -> {c} channels, seed {args.seed}')
    report('direct, bf16 inputs and weights', torch.nn.functional.conv2d(bf16(x), bf16(w), padding=1))
    report('F(2x2, 3x3), V and U in bf16', winograd(x, w, 2, True, True))
    f3 = cook_toom(3, [0, 1, -1, 2])
    report('F(3x3, 3x3), V and U in bf16', winograd(x, w, 3, True, True, f3))
    report('F(4x4, 3x3), V and U in bf16', winograd(x, w, 4, True, True))
    report('F(4x4, 3x3), V in bf16 (U exact)', winograd(x, w, 4, True, False))
    report('F(3x3, 3x3), float64 (check)', winograd(x, w, 3, False, False, f3))
    report('F(4x4, 3x3), float64 (check)', winograd(x, w, 4, False, False))


if __name__ == '__main__':
    main()
