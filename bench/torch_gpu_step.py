"""PyTorch peer for bench/gpu_check.sh: ResNet training-step throughput on one GPU, synthetic data.

usage: python3 bench/torch_gpu_step.py ARCH BATCH RES [STEPS] [WARMUP]

Eager mode, channels_last, autocast to bf16 (Composer's precision: amp on a bf16 GPU), soft cross-entropy,
SGD with momentum; prints one JSON line with images/s and the peak GPU memory PyTorch allocated."""
import json, sys, time
import torch, torchvision

arch, bs, res = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 20
warmup = int(sys.argv[5]) if len(sys.argv) > 5 else 5
torch.manual_seed(0)
dev = torch.device("cuda")
m = getattr(torchvision.models, arch)(num_classes=1000).to(dev).to(memory_format=torch.channels_last)
x = torch.randn(bs, 3, res, res, device=dev).to(memory_format=torch.channels_last)
y = torch.randint(0, 1000, (bs,), device=dev)
opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-5)
lossf = torch.nn.CrossEntropyLoss()
m.train()


def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = lossf(m(x), y)
    loss.backward()
    opt.step()


for _ in range(warmup):
    step()
torch.cuda.synchronize()
torch.cuda.reset_peak_memory_stats()
t = time.perf_counter()
for _ in range(steps):
    step()
torch.cuda.synchronize()
dt = (time.perf_counter() - t) / steps
print(json.dumps({"arch": arch, "batch": bs, "res": res, "images_per_s": round(bs / dt, 1),
                  "step_ms": round(dt * 1e3, 2), "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                  "torch": torch.__version__, "gpu": torch.cuda.get_device_name()}))
