"""PyTorch peer of recipes/fmnist_resnet20.yaml (`make demo`), layer for layer: CIFAR-style ResNet-20 (3x3 stem,
BasicBlocks 16/32/64, 1x1 conv + BN downsample), torchvision's initialization (kaiming_normal fan_out for convs,
BN 1/0), soft cross-entropy without smoothing, torch SGD (lr 0.2, momentum 0.9, nesterov, weight decay 5e-4),
Composer's cosine_decay_with_warmup per batch (linear warmup over 1 epoch from 0, cosine to 0), batch 128 with
drop_last, per-sample random 28x28 crop of the image zero-padded by 2 (in normalized units) and random flip,
Fashion-MNIST normalized with mean 72.94 / std 90.02 (of 255), evaluated on the 10,000 test images every epoch.
Prints one line per epoch: test top-1 and the training + evaluation seconds so far (data loading excluded).
usage: THREADS=2 python3 bench/torch_fmnist_peer.py [EPOCHS=10] [channels_last 0/1=1]"""
import gzip
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
cl = (sys.argv[2] if len(sys.argv) > 2 else "1") == "1"
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
torch.manual_seed(42)
rng = np.random.default_rng(42)
D = "/usr/share/datasets/fashion-mnist/"


def idx(name, off):
    return np.frombuffer(gzip.open(D + name).read(), np.uint8, offset=off)


def images(name):
    x = torch.tensor(idx(name, 16).reshape(-1, 1, 28, 28)).float()
    return (x - 72.94) / 90.02


xtr, xte = images("train-images-idx3-ubyte.gz"), images("t10k-images-idx3-ubyte.gz")
ytr = torch.tensor(idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64))
yte = torch.tensor(idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64))
xtr_pad = F.pad(xtr, (2, 2, 2, 2))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


layers, c = [nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
for stage, width in enumerate([16, 32, 64]):
    for k in range(3):
        layers.append(Block(c, width, 2 if (k == 0 and stage > 0) else 1))
        c = width
net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))
for m in net.modules():
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
if cl:
    net = net.to(memory_format=torch.channels_last)
opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4)
bs = 128
per_epoch = len(xtr) // bs
total, warm = epochs * per_epoch, per_epoch


def lr_factor(t):  # Composer cosine_decay_with_warmup, alpha_f = 0
    if t < warm:
        return t / warm
    return 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))


sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
rows = torch.arange(28)
elapsed = 0.0
for ep in range(epochs):
    t0 = time.perf_counter()
    net.train()
    perm = torch.from_numpy(rng.permutation(len(xtr)))
    for b in range(per_epoch):
        ix = perm[b * bs:(b + 1) * bs]
        dy = torch.from_numpy(rng.integers(0, 5, bs))
        dx = torch.from_numpy(rng.integers(0, 5, bs))
        flip = torch.from_numpy(rng.random(bs) < 0.5)
        # x[n, 0, i, j] = padded[n, 0, dy + i, dx + (27 - j if flip else j)]
        yy = (dy[:, None] + rows[None, :])[:, None, :, None].expand(bs, 1, 28, 32)
        xx = (dx[:, None] + torch.where(flip[:, None], 27 - rows[None, :], rows[None, :]))[:, None, None, :]
        x = xtr_pad[ix].gather(2, yy).gather(3, xx.expand(bs, 1, 28, 28))
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(net(x), ytr[ix])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    correct = 0
    with torch.no_grad():
        for b in range(0, len(xte), 1000):
            xb = xte[b:b + 1000]
            if cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            correct += (net(xb).argmax(1) == yte[b:b + 1000]).sum().item()
    elapsed += time.perf_counter() - t0
    print(f"epoch {ep + 1} test_top1 {correct / len(xte):.4f} seconds {elapsed:.1f}", flush=True)
