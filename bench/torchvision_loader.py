"""torchvision_loader.py — the PyTorch peer of `ctrain bench --loader`: ImageFolder + RandomResizedCrop + flip +
ToTensor + Normalize through a DataLoader (Pillow decoding), images/s over a number of epochs.

usage: python3 bench/torchvision_loader.py FOLDER/train RES BATCH WORKERS EPOCHS
Prints one JSON object: {"images_per_s": ..., "num_workers": ..., "res": ..., "batch": ..., "images": ...}."""
import json
import sys
import time

import torch
from torchvision import datasets, transforms

root, res, batch, workers, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(1)
tf = transforms.Compose([
    transforms.RandomResizedCrop(res),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])
ds = datasets.ImageFolder(root, tf)
dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                 persistent_workers=workers > 0)
images, t0 = 0, None
for ep in range(epochs):
    for k, (x, y) in enumerate(dl):
        if t0 is None:
            t0 = time.perf_counter()  # the first batch pays for starting the workers
        else:
            images += x.shape[0]
dt = time.perf_counter() - t0
print(json.dumps({"images_per_s": images / dt, "num_workers": workers, "res": res, "batch": batch, "images": images}))
