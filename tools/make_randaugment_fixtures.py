#!/usr/bin/env python3
"""make_randaugment_fixtures.py — writes tests/fixtures/randaugment_pil.safetensors: Pillow's results for each
RandAugment op (called exactly as Composer 0.9's composer/algorithms/utils/augmentation_primitives.py calls
Pillow), at fixed magnitudes, which tests/unit/test_randaugment.c compares src/data/randaugment.c against.

Regenerate (from the repository root):  python3 tools/make_randaugment_fixtures.py
Needs numpy, Pillow and safetensors (pip); a fixture tool only, never a dependency of the build or of the tests.

The file holds three RGB input images, u8 [h, w, 3]:
  in/cat    [29, 37, 3]  chelsea.jpg (../shared/fixtures/photos, decoded with PIL), rows 100:129, cols 200:237
  in/synth  [29, 37, 3]  R: horizontal gradient 30..200 plus noise; G: 77 except 20 pixels at 10 (equalize's
                         step == 0 path); B: uniform noise 0..255 — numpy default_rng(7)
  in/sq     [16, 16, 3]  square (rotate's 90/270 transpose path): R noise, G vertical gradient, B constant 128
                         (the constant-channel paths of autocontrast and equalize)
and per op (names below), mag/<op> f64 [n]: the n magnitudes, and out/<image>/<op>/<i> u8 [h, w, 3]: Pillow's
output at magnitude i. Magnitudes: posterize bits, solarize threshold, rotate degrees, shear factor, translate
pixels, enhance factor; autocontrast and equalize take none (n = 1, magnitude 0).
Metadata "pillow" holds PIL.__version__.
"""
import os

import numpy as np
from PIL import Image, ImageEnhance, ImageOps
from safetensors.numpy import save_file

import PIL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "..", "shared", "fixtures", "photos")
OUT = os.path.join(ROOT, "tests", "fixtures", "randaugment_pil.safetensors")

BILINEAR = Image.Resampling.BILINEAR
AFFINE = Image.Transform.AFFINE


def cat():
    a = np.asarray(Image.open(os.path.join(PHOTOS, "chelsea.jpg")).convert("RGB"))
    return np.ascontiguousarray(a[100:129, 200:237])


def synth():
    g = np.random.default_rng(7)
    h, w = 29, 37
    r = np.linspace(30, 200, w)[None, :] + g.normal(0, 6, (h, w))
    gch = np.full((h, w), 77.0)
    idx = g.choice(h * w, 20, replace=False)
    gch.flat[idx] = 10
    b = g.integers(0, 256, (h, w))
    return np.clip(np.rint(np.stack([r, gch, b], -1)), 0, 255).astype(np.uint8)


def square():
    g = np.random.default_rng(11)
    r = g.integers(0, 256, (16, 16))
    gch = np.repeat(np.linspace(5, 250, 16)[:, None], 16, 1)
    b = np.full((16, 16), 128)
    return np.rint(np.stack([r, gch, b], -1)).astype(np.uint8)


def affine(im, m):
    return im.transform(im.size, AFFINE, m, resample=BILINEAR)


# op name -> (magnitudes, function(PIL image, magnitude) -> PIL image), each as Composer calls Pillow.
OPS = {
    "autocontrast": ([0], lambda im, m: ImageOps.autocontrast(im)),
    "equalize": ([0], lambda im, m: ImageOps.equalize(im)),
    "posterize": ([1, 2, 4], lambda im, m: ImageOps.posterize(im, int(m))),
    "solarize": ([1, 77, 200], lambda im, m: ImageOps.solarize(im, int(m))),
    "rotate": ([-29, 7, 90, 180, 270], lambda im, m: im.rotate(int(m), resample=BILINEAR)),
    "shear_x": ([0.27, -0.1234], lambda im, m: affine(im, (1, m, 0, 0, 1, 0))),
    "shear_y": ([-0.27, 0.05], lambda im, m: affine(im, (1, 0, 0, m, 1, 0))),
    "translate_x": ([-12, 5, 2.5], lambda im, m: affine(im, (1, 0, m, 0, 1, 0))),
    "translate_y": ([9, -3], lambda im, m: affine(im, (1, 0, 0, 0, 1, m))),
    "color": ([0.19, 1.2, 8.3], lambda im, m: ImageEnhance.Color(im).enhance(m)),
    "contrast": ([0.6, 2.2, 7.0], lambda im, m: ImageEnhance.Contrast(im).enhance(m)),
    "brightness": ([0.3, 1.3, 6.0], lambda im, m: ImageEnhance.Brightness(im).enhance(m)),
    "sharpness": ([0.25, 1.1, 9.0], lambda im, m: ImageEnhance.Sharpness(im).enhance(m)),
}


def main():
    images = {"cat": cat(), "synth": synth(), "sq": square()}
    tensors = {}
    for name, a in images.items():
        tensors["in/" + name] = a
    for op, (mags, fn) in OPS.items():
        tensors["mag/" + op] = np.asarray(mags, dtype=np.float64)
        for name, a in images.items():
            for i, m in enumerate(mags):
                out = np.asarray(fn(Image.fromarray(a, "RGB"), m))
                assert out.shape == a.shape and out.dtype == np.uint8
                tensors[f"out/{name}/{op}/{i}"] = np.ascontiguousarray(out)
    save_file(tensors, OUT, metadata={"pillow": PIL.__version__})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
