#!/usr/bin/env python3
"""make_fixtures.py — writes the PyTorch reference fixtures that ctrain's parity tests compare against.

    python3 tools/make_fixtures.py            # rewrites tests/fixtures/parity_*.safetensors and torchvision_keys.json

Needs torch, torchvision and safetensors (a fixture tool only: never a runtime or CI dependency of ctrain).

For each small network below it writes one safetensors file holding, with torchvision's state_dict names:
  init.<key>         every parameter and buffer before training (BN affine and running stats randomized)
  x                  the input batch, NHWC [n, h, w, c]
  target             soft targets [n, classes] (rows of label-smoothed / mixed one-hots)
  logits             forward output in train mode at the initial weights [n, classes]
  loss               scalar loss at the initial weights
  grad.<key>         gradient of the loss for every trainable parameter
  after1.<key>       BN running_mean / running_var after that first train-mode forward
  losses             [3] the loss of each of 3 optimizer steps on the same batch (step 0 = the loss above)
  step3.<key>        every parameter and buffer after the 3 optimizer steps
The values are computed in float64 (then stored as float32), and the same run in float32 must agree with them
within a quarter of the C test's tolerances, or the script refuses to write the fixture.
and, in the metadata, the configuration ("config": JSON) the C test needs to build the same model and optimizer.

The networks follow torchvision/models/resnet.py line for line, with the stem/first-stage width as a parameter
(torchvision fixes it at 64); build(width=64) is checked to give torchvision's exact state_dict.
torchvision_keys.json lists torchvision's state_dict (name, shape) for resnet18/34/50/101/152.
torch_state_dict_resnet8_w4.safetensors is a plain `safetensors.torch.save_file(model.state_dict())` export of
a CIFAR ResNet-8 (width 4, 1 input channel, 7 classes): the form users fine-tune from.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, base_width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0))
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet with a variable width and stem; cifar=True: 3x3/1 stem, no max-pool."""

    def __init__(self, block, layers, num_classes, width=64, in_channels=3, cifar=False):
        super().__init__()
        self.inplanes = width
        if cifar:
            self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar else nn.MaxPool2d(3, 2, 1)
        self.stages = len(layers)
        for i, n in enumerate(layers):
            setattr(self, f"layer{i + 1}", self._make_layer(block, width << i, n, 1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear((width << (len(layers) - 1)) * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def soft_cross_entropy(z, t):
    return -(t * F.log_softmax(z, dim=1)).sum(dim=1).mean()


def bce_with_logits(z, t):
    return F.binary_cross_entropy_with_logits(z, t, reduction="sum") / z.shape[0]


def decoupled_sgdw_step(params, bufs, lr, initial_lr, momentum, dampening, weight_decay, nesterov):
    """Composer 0.9 DecoupledSGDW.sgdw, verbatim in meaning."""
    with torch.no_grad():
        for i, p in enumerate(params):
            d_p = p.grad
            if momentum != 0:
                if bufs[i] is None:
                    bufs[i] = torch.clone(d_p).detach()
                else:
                    bufs[i].mul_(momentum).add_(d_p, alpha=1 - dampening)
                d_p = d_p.add(bufs[i], alpha=momentum) if nesterov else bufs[i]
            if weight_decay != 0:
                p.mul_(1 - (lr / initial_lr) * weight_decay)
            p.add_(d_p, alpha=-lr)


def randomize(model, gen):
    """Non-trivial BN affine parameters and running statistics, so every fixture tensor matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.num_batches_tracked.fill_(3)


def soft_targets(labels, classes, gen):
    """Label smoothing 0.1 mixed with a permuted batch at lambda 0.3 (as MixUp would make)."""
    one = F.one_hot(labels, classes).float()
    smooth = one * 0.9 + 0.1 / classes
    perm = torch.randperm(labels.shape[0], generator=gen)
    return 0.7 * smooth + 0.3 * one[perm]


def run_steps(cfg, model, dtype):
    """The fixture's computation in one precision; returns the dict of tensors (in that precision)."""
    model = model.to(dtype)
    gen = torch.Generator().manual_seed(cfg["seed"])
    randomize(model, gen)
    n, h, w, c, classes = cfg["batch"], cfg["res"], cfg["res"], cfg["in_channels"], cfg["num_classes"]
    x = torch.randn(n, c, h, w, generator=gen).to(dtype)
    labels = torch.randint(0, classes, (n,), generator=gen)
    target = soft_targets(labels, classes, gen).to(dtype)
    lossf = bce_with_logits if cfg["loss"] == "binary_cross_entropy_with_logits" else soft_cross_entropy
    out = {f"init.{k}": v.clone() for k, v in model.state_dict().items()}
    out["x"] = x.permute(0, 2, 3, 1).contiguous()
    out["target"] = target

    params = list(model.parameters())
    names = [k for k, _ in model.named_parameters()]
    o = cfg["optimizer"]
    if o["name"] == "sgd":
        opt = torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], dampening=o["dampening"],
                              weight_decay=o["weight_decay"], nesterov=o["nesterov"])
    bufs = [None] * len(params)
    losses = []
    model.train()
    for step, lr in enumerate(cfg["lrs"]):
        for p in params:
            p.grad = None
        z = model(x)
        loss = lossf(z, target)
        loss.backward()
        losses.append(loss.detach().clone())
        if step == 0:
            out["logits"] = z.detach().clone()
            out["loss"] = loss.detach().clone().reshape(())
            for k, p in zip(names, params):
                out[f"grad.{k}"] = p.grad.detach().clone()
            for k, v in model.state_dict().items():
                if "running" in k:
                    out[f"after1.{k}"] = v.clone()
        if o["name"] == "sgd":
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
        else:
            decoupled_sgdw_step(params, bufs, lr, o["lr"], o["momentum"], o["dampening"], o["weight_decay"],
                                o["nesterov"])
    out["losses"] = torch.stack(losses)
    for k, v in model.state_dict().items():
        out[f"step3.{k}"] = v.clone()
    return out


def rel_error(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def write_fixture(name, cfg, build):
    """Runs the fixture in float64 (stored, rounded to float32) and in float32, and requires PyTorch's own
    float32 run to pass the tolerances the C test applies: a fixture that float32 cannot reproduce (an
    ill-conditioned network) is refused rather than written."""
    torch.manual_seed(cfg["seed"])
    ref = run_steps(cfg, build(), torch.float64)
    torch.manual_seed(cfg["seed"])
    f32 = run_steps(cfg, build(), torch.float32)
    for k, v in ref.items():
        if v.dtype not in (torch.float32, torch.float64):
            continue
        tol = 1e-4 if k in ("logits", "loss", "losses") else 1e-3
        e = rel_error(f32[k], v)
        assert e <= tol / 4, f"{name}: PyTorch float32 vs float64 differ by {e:.2e} in {k}: ill-conditioned"
    out = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in ref.items()}
    path = os.path.join(OUT, f"parity_{name}.safetensors")
    save_file(out, path, metadata={"config": json.dumps(cfg), "torch": torch.__version__, "precision": "float64"})
    print(f"wrote {path}: {len(out)} tensors, {os.path.getsize(path)} bytes, losses {out['losses'].tolist()}")


def check_against_torchvision():
    ours = ResNet(Bottleneck, [3, 4, 6, 3], 1000).state_dict()
    tv = torchvision.models.resnet50().state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == [(k, tuple(v.shape)) for k, v in tv.items()]
    ours = ResNet(BasicBlock, [2, 2, 2, 2], 1000).state_dict()
    tv = torchvision.models.resnet18().state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == [(k, tuple(v.shape)) for k, v in tv.items()]


def write_torchvision_keys():
    keys = {}
    for arch in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]:
        m = getattr(torchvision.models, arch)()
        keys[arch] = {"state_dict": [[k, list(v.shape)] for k, v in m.state_dict().items()],
                      "num_parameters": sum(p.numel() for p in m.parameters())}
    path = os.path.join(OUT, "torchvision_keys.json")
    with open(path, "w") as f:
        json.dump({"torchvision": torchvision.__version__, "models": keys}, f, separators=(",", ":"))
    print(f"wrote {path}")


def write_state_dict_export():
    torch.manual_seed(5)
    model = ResNet(BasicBlock, [1, 1, 1], 7, width=4, in_channels=1, cifar=True)
    randomize(model, torch.Generator().manual_seed(5))
    path = os.path.join(OUT, "torch_state_dict_resnet8_w4.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    print(f"wrote {path}")


def main():
    os.makedirs(OUT, exist_ok=True)
    check_against_torchvision()
    write_torchvision_keys()
    write_state_dict_export()
    torch.set_num_threads(1)
    # Small but well-conditioned: at tiny widths a deep BN network is chaotic in float32 (float32 and float64
    # PyTorch disagree after one step), so the bottleneck net is shallow and the inputs are 64 px.
    cfgs = [
        ("resnet18_w4", BasicBlock, [2, 2, 2, 2], False, {
            "model_name": "resnet18", "layers": [2, 2, 2, 2], "width": 4, "stem": "imagenet", "in_channels": 3,
            "num_classes": 10, "batch": 8, "res": 64, "seed": 1, "loss": "soft_cross_entropy",
            "lrs": [0.02, 0.05, 0.02],
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 5e-4,
                          "nesterov": True}}),
        ("bottleneck_w4", Bottleneck, [2, 1, 1, 1], False, {
            "model_name": "resnet50", "layers": [2, 1, 1, 1], "width": 4, "stem": "imagenet", "in_channels": 3,
            "num_classes": 12, "batch": 6, "res": 64, "seed": 2, "loss": "binary_cross_entropy_with_logits",
            "lrs": [0.0, 0.002, 0.005],
            "optimizer": {"name": "decoupled_sgdw", "lr": 0.005, "momentum": 0.875, "dampening": 0.0,
                          "weight_decay": 5e-4, "nesterov": False}}),
        ("cifar_resnet8_w4", BasicBlock, [1, 1, 1], True, {
            "model_name": "resnet8", "layers": [1, 1, 1], "width": 4, "stem": "cifar", "in_channels": 1,
            "num_classes": 7, "batch": 5, "res": 12, "seed": 3, "loss": "soft_cross_entropy",
            "lrs": [0.2, 0.2, 0.1],
            "optimizer": {"name": "sgd", "lr": 0.2, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-3,
                          "nesterov": False}}),
    ]
    for name, block, layers, cifar, cfg in cfgs:
        def build():
            return ResNet(block, layers, cfg["num_classes"], width=cfg["width"], in_channels=cfg["in_channels"],
                          cifar=cifar)
        write_fixture(name, cfg, build)


if __name__ == "__main__":
    main()
