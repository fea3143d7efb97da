#!/usr/bin/env python3
"""make_algorithm_fixtures.py — PyTorch fixtures for the algorithms that change the training step itself.

    python3 tools/make_algorithm_fixtures.py      # rewrites tests/fixtures/algo_sam.safetensors

algo_sam.safetensors: Composer 0.9's SAM (SAMOptimizer over torch.optim.SGD, interval 2) on a small CIFAR
ResNet-8 (1 input channel, width 4, 7 classes), one fixed batch of 8 images 12x12 trained for 4 steps, so
steps 1 and 3 take SAM's perturbed second pass and steps 0 and 2 do not. It holds:
  init.<key>        the state_dict before training (the C test loads it with load_path)
  x                 the batch, NHWC [8, 12, 12, 1]; labels [8] int64
  losses            [4] the first pass's loss at each step (what Composer reports)
  final.<key>       the state_dict after the 4 steps (BN running statistics updated by every forward, SAM's
                    second passes included)
and, in its metadata, the configuration ("config": JSON). Computed in float64 and stored as float32; the same
run in float32 must agree with it within a quarter of the test's tolerance, as in make_fixtures.py.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402  (the ResNet modules and the fixture conventions)

CFG = {"model_name": "resnet8", "width": 4, "in_channels": 1, "num_classes": 7, "batch": 8, "res": 12,
       "seed": 21, "steps": 4, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "rho": 0.5, "epsilon": 1e-12,
       "interval": 2}


def run(dtype):
    torch.manual_seed(CFG["seed"])
    model = mf.ResNet(mf.BasicBlock, [1, 1, 1], CFG["num_classes"], width=CFG["width"],
                      in_channels=CFG["in_channels"], cifar=True)
    gen = torch.Generator().manual_seed(CFG["seed"])
    mf.randomize(model, gen)
    model = model.to(dtype)
    x = torch.randn(CFG["batch"], CFG["in_channels"], CFG["res"], CFG["res"], generator=gen).to(dtype)
    labels = torch.randint(0, CFG["num_classes"], (CFG["batch"],), generator=gen)
    out = {f"init.{k}": v.clone() for k, v in model.state_dict().items()}
    out["x"] = x.permute(0, 2, 3, 1).contiguous()
    out["labels"] = labels.clone()
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=CFG["lr"], momentum=CFG["momentum"], weight_decay=CFG["weight_decay"])
    model.train()

    def closure():
        for p in params:
            p.grad = None
        loss = F.cross_entropy(model(x), labels)  # Composer's soft_cross_entropy on index targets
        loss.backward()
        return loss.detach().clone()

    losses = []
    for step in range(CFG["steps"]):
        loss = closure()
        losses.append(loss)
        if (step + 1) % CFG["interval"] == 0:  # SAMOptimizer.step: (global_step + 1) % interval == 0
            with torch.no_grad():
                grad_norm = torch.norm(torch.stack([p.grad.norm(p=2) for p in params]), p=2)
                scale = CFG["rho"] / (grad_norm + CFG["epsilon"])
                es = []
                for p in params:
                    e_w = p.grad * scale
                    p.add_(e_w)
                    es.append(e_w)
            closure()
            with torch.no_grad():
                for p, e_w in zip(params, es):
                    p.sub_(e_w)
        opt.step()
    out["losses"] = torch.stack(losses)
    for k, v in model.state_dict().items():
        out[f"final.{k}"] = v.clone()
    return out


def main():
    ref, f32 = run(torch.float64), run(torch.float32)
    for k, v in ref.items():
        if not v.is_floating_point():
            continue
        tol = 1e-4 if k == "losses" else 1e-3
        e = mf.rel_error(f32[k], v)
        assert e <= tol / 4, f"float32 vs float64 differ by {e:.2e} in {k}: ill-conditioned"
    out = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in ref.items()}
    path = os.path.join(mf.OUT, "algo_sam.safetensors")
    save_file(out, path, metadata={"config": json.dumps(CFG), "torch": torch.__version__})
    print(f"wrote {path}: {len(out)} tensors, {os.path.getsize(path)} bytes, losses {out['losses'].tolist()}")


if __name__ == "__main__":
    main()
