#!/usr/bin/env python3
"""make_fixtures.py — writes the PyTorch reference fixtures that ctrain's parity tests compare against.

    python3 tools/make_fixtures.py            # rewrites tests/fixtures/parity_*.safetensors and torchvision_keys.json
    python3 tools/make_fixtures.py surgery_se # only the named fixtures (parity_<name>.safetensors)
    CTRAIN_FIXTURES_OUT=/tmp/f python3 tools/make_fixtures.py   # write somewhere else (e.g. to compare)

A rerun reproduces every tensor and the metadata exactly, but safetensors writes the metadata keys in a
different order from run to run, so the files' header bytes may differ: regenerate only the fixtures you change.

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
The parity_surgery_* fixtures apply Composer 0.9's model surgery (BlurPool, StochasticDepth, SqueezeExcite) to
such a network, with Composer's modules reimplemented below from its source (composer/algorithms/blurpool/
blurpool_layers.py + blurpool.py, stochastic_depth/stochastic_depth.py + stochastic_layers.py,
squeeze_excite/squeeze_excite.py, utils/module_surgery.py), so their keys are Composer's ("layer2.0.conv2.conv.weight",
"layer3.0.conv1.se.pool_and_mlp.2.weight"); the constant blur filters (buffers blur_filter / filt2d) are left out.
Their config carries "surgery" (ctrain's ResnetSurgery fields). Stochastic-depth fixtures also hold
  mask.<step>        [blocks, n] the 0/1 factor each Bottleneck applied to each sample in that training step
                     (drawn in float32 as Composer does: floor((1-p) + U[0,1)) per sample, or one bernoulli(1-p)
                     per block; the C test feeds them through Model.drop_mask_hook)
  eval_logits        the eval-mode logits at the initial weights (branches scaled by 1-p)
and a dropped 'block' branch's parameters, which get no gradient in PyTorch, get zero gradients before the
optimizer step, as DDP gives them on multi-GPU runs and as ctrain always does (docs/design.md, Model surgery).

torch_state_dict_resnet8_w4.safetensors is a plain `safetensors.torch.save_file(model.state_dict())` export of
a CIFAR ResNet-8 (width 4, 1 input channel, 7 classes): the form users fine-tune from.
"""
import collections
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

OUT = os.environ.get("CTRAIN_FIXTURES_OUT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                             "fixtures")


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


def is_constant_buffer(key):
    """Composer's blur filters: constant buffers, not part of ctrain's state."""
    return key.endswith(".blur_filter") or key.endswith(".filt2d")


def run_steps(cfg, model, dtype, before_step=None, before_train=None):
    """The fixture's computation in one precision; returns the dict of tensors (in that precision).
    before_train(model, x, out): runs once before training (eval checks); before_step(model, step, out): before
    each training step (stochastic-depth masks)."""
    model = model.to(dtype)
    gen = torch.Generator().manual_seed(cfg["seed"])
    randomize(model, gen)
    n, h, w, c, classes = cfg["batch"], cfg["res"], cfg["res"], cfg["in_channels"], cfg["num_classes"]
    x = torch.randn(n, c, h, w, generator=gen).to(dtype)
    labels = torch.randint(0, classes, (n,), generator=gen)
    target = soft_targets(labels, classes, gen).to(dtype)
    lossf = bce_with_logits if cfg["loss"] == "binary_cross_entropy_with_logits" else soft_cross_entropy
    out = {f"init.{k}": v.clone() for k, v in model.state_dict().items() if not is_constant_buffer(k)}
    out["x"] = x.permute(0, 2, 3, 1).contiguous()
    out["target"] = target
    if before_train is not None:
        before_train(model, x, out)

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
        if before_step is not None:
            before_step(model, step, out)
        z = model(x)
        loss = lossf(z, target)
        loss.backward()
        for p in params:  # parameters of a dropped stochastic-depth block: zero, as under DDP and in ctrain
            if p.grad is None:
                p.grad = torch.zeros_like(p)
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
        if not is_constant_buffer(k):
            out[f"step3.{k}"] = v.clone()
    return out


def rel_error(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


# How far every ReLU input and max-pool decision of a fixture must lie from its threshold, in units of PyTorch
# float32's own deviation from float64 on that value (see threshold_margin).
MIN_MARGIN = 10.0


def keep_threshold_inputs(model, log):
    """Forward pre-hooks appending ("relu", input) or ("max", input, kernel, stride, padding) to log, in calling
    order, for every ReLU and max pool (nn.MaxPool2d and Composer's BlurMaxPool2d, whose max runs at stride 1)."""
    def keep(*what):
        def hook(mod, inp):
            log.append((what[0], inp[0].detach().double().clone()) + what[1:])
        return hook
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_pre_hook(keep("relu"))
        elif isinstance(m, nn.MaxPool2d):
            m.register_forward_pre_hook(keep("max", m.kernel_size, m.stride, m.padding))
        elif isinstance(m, BlurMaxPool2d):
            m.register_forward_pre_hook(keep("max", m.kernel_size, 1, m.padding))


def threshold_margin(log64, log32):
    """The smallest distance of a ReLU input from 0, or of a max-pool window's largest value from its second
    largest, in the float64 run, over the float32 run's deviation on those values (inf: none near). A decision
    that float32 rounding can flip (a value within rounding of the threshold) changes that element's gradient
    from 0 to all of it; in these small networks one such flip at a later step moves the lower layers' weight
    gradients by several percent, so a fixture is only fit to judge other float32 code by when every decision
    lies well clear of the threshold."""
    worst = math.inf
    for e64, e32 in zip(log64, log32):
        a, d = e64[1], (e32[1] - e64[1]).abs()
        if e64[0] == "relu":
            gap, noise = a.abs(), d
        else:
            k, st, pad = e64[2:]
            c = a.shape[1]
            win = F.unfold(F.pad(a, (pad,) * 4, value=-math.inf), k, stride=st).view(a.shape[0], c, k * k, -1)
            dev = F.unfold(F.pad(d, (pad,) * 4), k, stride=st).view(a.shape[0], c, k * k, -1)
            top = win.topk(2, dim=2).values
            gap, noise = top[:, :, 0] - top[:, :, 1], 2 * dev.amax(dim=2)
            gap = torch.where(top[:, :, 0] > 0, gap, torch.full_like(gap, math.inf))  # windows of zeros: exact ties
        ratio = gap / noise
        ratio = torch.where(gap == 0, torch.zeros_like(ratio), ratio)
        worst = min(worst, ratio.nan_to_num(math.inf).min().item())
    return worst


def compute_fixture(name, cfg, build, **hooks):
    """Runs the fixture in float64 (the values stored) and in float32, and requires PyTorch's own float32 run to
    pass the tolerances the C test applies and to make every ReLU and max-pool decision the same way with
    MIN_MARGIN to spare: a fixture that float32 cannot reproduce (an ill-conditioned network), or only by luck
    (a value within rounding of a threshold), is refused rather than written. Returns the stored tensors."""
    def run(dtype):
        torch.manual_seed(cfg["seed"])
        model, log = build(), []
        keep_threshold_inputs(model, log)
        return run_steps(cfg, model, dtype, **hooks), log

    (ref, log64), (f32, log32) = run(torch.float64), run(torch.float32)
    for k, v in ref.items():
        if v.dtype not in (torch.float32, torch.float64):
            continue
        tol = 1e-4 if k in ("logits", "loss", "losses", "eval_logits") else 1e-3
        e = rel_error(f32[k], v)
        assert e <= tol / 4, f"{name}: PyTorch float32 vs float64 differ by {e:.2e} in {k}: ill-conditioned"
    margin = threshold_margin(log64, log32)
    assert margin >= MIN_MARGIN, (f"{name}: a ReLU or max-pool decision lies {margin:.3g} times float32's rounding "
                                  f"from its threshold (at least {MIN_MARGIN} wanted): choose another seed")
    return {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in ref.items()}, margin


def write_fixture(name, cfg, build, **hooks):
    """compute_fixture, written to parity_<name>.safetensors."""
    out, margin = compute_fixture(name, cfg, build, **hooks)
    path = os.path.join(OUT, f"parity_{name}.safetensors")
    save_file(out, path, metadata={"config": json.dumps(cfg), "torch": torch.__version__, "precision": "float64"})
    print(f"wrote {path}: {len(out)} tensors, {os.path.getsize(path)} bytes, losses {out['losses'].tolist()}, "
          f"threshold margin {margin:.3g}")


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


# Small but well-conditioned: at tiny widths a deep BN network is chaotic in float32 (float32 and float64
# PyTorch disagree after one step), so the bottleneck net is shallow and the inputs are 64 px.
PLAIN_CFGS = [
    ("resnet18_w4", BasicBlock, [2, 2, 2, 2], False, {
        "model_name": "resnet18", "layers": [2, 2, 2, 2], "width": 4, "stem": "imagenet", "in_channels": 3,
        "num_classes": 10, "batch": 8, "res": 64, "seed": 112, "loss": "soft_cross_entropy",
        "lrs": [0.02, 0.05, 0.02],
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 5e-4,
                      "nesterov": True}}),
    ("bottleneck_w4", Bottleneck, [2, 1, 1, 1], False, {
        "model_name": "resnet50", "layers": [2, 1, 1, 1], "width": 4, "stem": "imagenet", "in_channels": 3,
        "num_classes": 12, "batch": 6, "res": 64, "seed": 109, "loss": "binary_cross_entropy_with_logits",
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


# ---------------------------------------------------------------- Composer 0.9 model surgery, reimplemented
# From composer/utils/module_surgery.py, composer/algorithms/blurpool/{blurpool,blurpool_layers}.py,
# stochastic_depth/{stochastic_depth,stochastic_layers}.py and squeeze_excite/squeeze_excite.py.

def replace_module_classes(module, policies):
    """module_surgery.replace_module_classes: children in pre-order (first-in first-out), each policy called with
    the module and the count of that class seen so far; replacements are not visited again."""
    children = collections.OrderedDict()

    def add_children(mod):
        for name, child in mod.named_children():
            if child not in children:
                children[child] = []
                add_children(child)
            children[child].append((mod, name))

    add_children(module)
    indices = {c: 0 for c in policies}
    while children:
        child, parents = children.popitem(last=False)
        for cls, fn in policies.items():
            if not isinstance(child, cls):
                continue
            replacement = fn(child, indices[cls])
            indices[cls] += 1
            if replacement is not None:
                for parent, name in parents:
                    setattr(parent, name, replacement)


def count_module_instances(module, cls):
    return len({m for m in module.modules() if isinstance(m, cls) and m is not module})


def _default_2d_filter():
    return torch.tensor([[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]]) * 1 / 16.0


def blur_2d(input, stride=1, filter=None):
    _, c, h, w = input.shape
    if filter is None:
        filter = _default_2d_filter()
    if filter.shape[0] == 1 and c > 1:
        filter = filter.repeat((c, 1, 1, 1))
    _, _, fh, fw = filter.shape
    padding = (fh // 2, fw // 2)
    if h + 2 * padding[0] < fh or w + 2 * padding[1] < fw:
        return input
    return F.conv2d(input, filter, stride=stride, padding=padding, groups=c, bias=None)


class BlurMaxPool2d(nn.Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode
        self.register_buffer("filt2d", _default_2d_filter())

    def forward(self, input):
        maxs = F.max_pool2d(input, kernel_size=self.kernel_size, stride=1, padding=self.padding,
                            dilation=self.dilation, ceil_mode=self.ceil_mode)
        return blur_2d(maxs, stride=self.stride, filter=self.filt2d)

    @staticmethod
    def from_maxpool2d(module, module_index):
        return BlurMaxPool2d(kernel_size=module.kernel_size, stride=module.stride, padding=module.padding,
                             dilation=module.dilation, ceil_mode=module.ceil_mode)


class BlurConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=None, padding=0, dilation=1, groups=1,
                 bias=True, blur_first=True):
        super().__init__()
        self.blur_first = blur_first
        if blur_first:
            conv_stride, self.blur_stride, blur_nchannels = stride, 1, in_channels
        else:
            conv_stride, self.blur_stride, blur_nchannels = 1, (kernel_size if stride is None else stride), \
                out_channels
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=conv_stride, padding=padding,
                              dilation=dilation, groups=groups, bias=bias)
        self.register_buffer("blur_filter", _default_2d_filter().repeat(blur_nchannels, 1, 1, 1))

    def forward(self, input):
        if self.blur_first:
            return self.conv(blur_2d(input, filter=self.blur_filter, stride=self.blur_stride))
        return blur_2d(self.conv(input), filter=self.blur_filter, stride=self.blur_stride)

    @staticmethod
    def from_conv2d(module, module_index=-1, blur_first=True):
        has_bias = module.bias is not None and module.bias is not False
        b = BlurConv2d(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                       padding=module.padding, dilation=module.dilation, groups=module.groups, bias=has_bias,
                       blur_first=blur_first)
        with torch.no_grad():
            b.conv.weight.copy_(module.weight)
            if has_bias:
                b.conv.bias.copy_(module.bias)
        return b


def apply_blurpool(model, replace_convs=True, replace_maxpools=True, blur_first=True, min_channels=16):
    def maybe_replace_strided_conv2d(module, module_index):
        if max(module.stride) > 1 and module.in_channels >= min_channels:
            return BlurConv2d.from_conv2d(module, module_index, blur_first=blur_first)
        return None

    transforms = {}
    if replace_maxpools:
        transforms[nn.MaxPool2d] = BlurMaxPool2d.from_maxpool2d
    if replace_convs:
        transforms[nn.Conv2d] = maybe_replace_strided_conv2d
    replace_module_classes(model, transforms)
    return model


def sample_drop(x, mask, drop_rate, is_training):
    """stochastic_layers._sample_drop, with the per-sample factors floor((1-p) + U[0,1)) drawn beforehand."""
    keep_probability = 1 - drop_rate
    if not is_training:
        return x * keep_probability
    x *= mask.to(x.dtype).reshape([x.shape[0]] + [1] * len(x.shape[1:]))
    return x


def sample_stochastic_forward(self, x):
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    if self.downsample is not None:
        identity = self.downsample(x)
    if self.drop_rate:
        out = sample_drop(out, self.sd_mask, self.drop_rate, self.training)
    out += identity
    return self.relu(out)


def block_stochastic_forward(self, x):
    """stochastic_layers.block_stochastic_forward; sd_mask holds the bernoulli(1 - drop_rate) draw."""
    identity = x
    sample = (not self.training) or bool(self.sd_mask[0])
    if sample:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if not self.training:
            out = out * (1 - self.drop_rate)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
    else:
        if self.downsample is not None:
            out = self.relu(self.downsample(identity))
        else:
            out = identity
    return out


def apply_stochastic_depth(model, stochastic_method, drop_rate, drop_distribution):
    module_count = count_module_instances(model, Bottleneck)

    def make_stochastic(module, module_index):
        rate = drop_rate
        if drop_distribution == "linear":
            rate = ((module_index + 1) / module_count) * drop_rate
        module.drop_rate = torch.tensor(rate)
        module.sd_mask = None  # set per training step (draw_masks)
        f = block_stochastic_forward if stochastic_method == "block" else sample_stochastic_forward
        module.forward = f.__get__(module)
        return module

    replace_module_classes(model, {Bottleneck: make_stochastic})
    return model


class SqueezeExcite2d(nn.Module):
    def __init__(self, num_features, latent_channels=.125):
        super().__init__()
        self.latent_channels = int(latent_channels if latent_channels >= 1 else latent_channels * num_features)
        self.pool_and_mlp = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                          nn.Linear(num_features, self.latent_channels, bias=False), nn.ReLU(),
                                          nn.Linear(self.latent_channels, num_features, bias=False), nn.Sigmoid())

    def forward(self, input):
        n, c, _, _ = input.shape
        return input * self.pool_and_mlp(input).reshape(n, c, 1, 1)


class SqueezeExciteConv2d(nn.Module):
    def __init__(self, *args, latent_channels=0.125, conv=None, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(*args, **kwargs) if conv is None else conv
        self.se = SqueezeExcite2d(num_features=self.conv.out_channels, latent_channels=latent_channels)

    def forward(self, input):
        return self.se(self.conv(input))


def apply_squeeze_excite(model, latent_channels, min_channels):
    def convert(module, module_index):
        if min(module.in_channels, module.out_channels) < min_channels:
            return None
        return SqueezeExciteConv2d(conv=module, latent_channels=latent_channels)

    replace_module_classes(model, {nn.Conv2d: convert})
    return model


def stochastic_blocks(model):
    return [m for m in model.modules() if isinstance(m, Bottleneck) and hasattr(m, "drop_rate")]


def draw_masks(cfg, drop_rates, method, steps, seed):
    """Per step, [blocks, n] float32 factors as Composer draws them: floor((1-p) + U[0,1)) per sample, or one
    bernoulli(1-p) per block (copied over the batch)."""
    gen = torch.Generator().manual_seed(seed)
    n = cfg["batch"]
    masks = []
    for _ in range(steps):
        rows = []
        for p in drop_rates:
            keep = 1 - p
            if method == "sample":
                rows.append((keep + torch.rand(n, generator=gen)).floor())
            else:
                rows.append(torch.bernoulli(keep.expand(n)[:1], generator=gen).expand(n).clone())
        masks.append(torch.stack(rows).float())
    return masks


def write_surgery_fixture(name, cfg, block, layers, cifar):
    """A parity fixture of a small network with the surgery in cfg["surgery"] (ctrain's ResnetSurgery)."""
    s = cfg["surgery"]

    def build():
        model = ResNet(block, layers, cfg["num_classes"], width=cfg["width"], in_channels=cfg["in_channels"],
                       cifar=cifar)
        if s.get("blurpool"):
            apply_blurpool(model, s["blur_convs"], s["blur_maxpools"], s["blur_first"], s["blur_min_channels"])
        if s.get("squeeze_excite"):
            apply_squeeze_excite(model, s["se_latent_channels"], s["se_min_channels"])
        if s.get("stochastic_depth"):
            apply_stochastic_depth(model, s["sd_method"], s["sd_drop_rate"], s["sd_distribution"])
        return model

    hooks = {}
    if s.get("stochastic_depth"):
        rates = [b.drop_rate for b in stochastic_blocks(build())]
        masks = draw_masks(cfg, rates, s["sd_method"], len(cfg["lrs"]), cfg["seed"] + 100)
        flat = torch.stack(masks)
        assert (flat == 0).any() and (flat == 1).any(), f"{name}: the masks drop nothing or everything"
        if s["sd_method"] == "block":
            # every step must keep some block, and some dropped block must have a downsample branch
            assert all((m[:, 0] == 1).any() for m in masks)
            ds = [b.downsample is not None for b in stochastic_blocks(build())]
            assert any(m[i, 0] == 0 and ds[i] for m in masks for i in range(len(ds))), f"{name}: no dropped downsample"
            assert any(m[i, 0] == 0 and not ds[i] for m in masks for i in range(len(ds))), f"{name}: no plain drop"

        def before_train(model, x, out):
            model.eval()
            with torch.no_grad():
                out["eval_logits"] = model(x).detach().clone()
            model.train()

        def before_step(model, step, out):
            for b, mask in zip(stochastic_blocks(model), masks[step]):
                b.sd_mask = mask
            out[f"mask.{step}"] = masks[step].clone()

        hooks = {"before_train": before_train, "before_step": before_step}
    write_fixture(name, cfg, build, **hooks)


def surgery_cfg(model_name, layers, stem, in_channels, classes, batch, res, seed, surgery, sgdw=True):
    opt = ({"name": "decoupled_sgdw", "lr": 0.005, "momentum": 0.875, "dampening": 0.0, "weight_decay": 5e-4,
            "nesterov": False} if sgdw else
           {"name": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 5e-4, "nesterov": True})
    return {"model_name": model_name, "layers": layers, "width": 4, "stem": stem, "in_channels": in_channels,
            "num_classes": classes, "batch": batch, "res": res, "seed": seed,
            "loss": "binary_cross_entropy_with_logits" if sgdw else "soft_cross_entropy",
            "lrs": [0.0, 0.002, 0.005] if sgdw else [0.02, 0.05, 0.02], "optimizer": opt, "surgery": surgery}


BLUR = {"blurpool": True, "blur_convs": True, "blur_maxpools": True, "blur_first": True, "blur_min_channels": 8}
SURGERY_FIXTURES = {
    # Composer's recipe BlurPool (6 blurred convs + the blurred max-pool) on a width-4 bottleneck net
    "surgery_blurpool": lambda name: write_surgery_fixture(
        name, surgery_cfg("resnet50", [1, 1, 1, 1], "imagenet", 3, 10, 6, 64, 35, BLUR), Bottleneck,
        [1, 1, 1, 1], False),
    # blur_first false (stride-1 conv, then the strided blur) on a CIFAR-style BasicBlock net
    "surgery_blurpool_late": lambda name: write_surgery_fixture(
        name, surgery_cfg("resnet8", [1, 1, 1], "cifar", 3, 7, 5, 16, 12,
                          dict(BLUR, blur_first=False, blur_min_channels=4), sgdw=False), BasicBlock, [1, 1, 1], True),
    # StochasticDepth 'sample' (the Hot recipe's method), linear distribution
    "surgery_sd_sample": lambda name: write_surgery_fixture(
        name, surgery_cfg("resnet50", [1, 1, 1, 1], "imagenet", 3, 10, 8, 64, 13,
                          {"stochastic_depth": True, "sd_method": "sample", "sd_drop_rate": 0.5,
                           "sd_distribution": "linear"}), Bottleneck, [1, 1, 1, 1], False),
    # StochasticDepth 'block', uniform distribution: whole branches skipped
    "surgery_sd_block": lambda name: write_surgery_fixture(
        name, surgery_cfg("resnet50", [1, 2, 1, 1], "imagenet", 3, 10, 6, 64, 14,
                          {"stochastic_depth": True, "sd_method": "block", "sd_drop_rate": 0.5,
                           "sd_distribution": "uniform"}), Bottleneck, [1, 2, 1, 1], False),
    # SqueezeExcite with a fractional latent width
    "surgery_se": lambda name: write_surgery_fixture(
        name, surgery_cfg("resnet50", [1, 1, 1], "imagenet", 3, 10, 6, 64, 17,
                          {"squeeze_excite": True, "se_latent_channels": 0.25, "se_min_channels": 16}),
        Bottleneck, [1, 1, 1], False),
}

def main():
    only = set(sys.argv[1:])
    known = {name for name, *_ in PLAIN_CFGS} | set(SURGERY_FIXTURES)
    if only - known:
        sys.exit(f"make_fixtures.py: unknown fixture(s) {sorted(only - known)}; known: {sorted(known)}")
    os.makedirs(OUT, exist_ok=True)
    if not only:
        check_against_torchvision()
        write_torchvision_keys()
        write_state_dict_export()
    torch.set_num_threads(1)
    for name, block, layers, cifar, cfg in PLAIN_CFGS:
        if only and name not in only:
            continue

        def build():
            return ResNet(block, layers, cfg["num_classes"], width=cfg["width"], in_channels=cfg["in_channels"],
                          cifar=cifar)
        write_fixture(name, cfg, build)
    for name, make in SURGERY_FIXTURES.items():
        if not only or name in only:
            make(name)


if __name__ == "__main__":
    main()

