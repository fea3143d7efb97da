#!/usr/bin/env python3
"""make_resize_fixtures.py — writes tests/fixtures/resize_area.safetensors: OpenCV's INTER_AREA results that
tests/unit/test_image_kernels.c compares src/data/resize.c against, and two OpenCV JPEG encodings it compares
src/data/jpeg.c's encoder against (FFCV's writer encodes with cv2.imencode).

Regenerate (from the repository root):  python3 tools/make_resize_fixtures.py
Needs numpy, Pillow, safetensors and opencv-python-headless (pip); a fixture tool only, never a dependency of
the build or of the tests.

The file holds:
  src0 u8 [120, 160, 3]  chelsea.jpg (../shared/fixtures/photos, decoded with PIL), rows 60:180, cols 150:310
  src1 u8 [100, 90, 1]   camera_gray.jpg (PIL, mode L), rows 200:300, cols 200:290
  src2 u8 [37, 53, 3]    uniform noise, numpy default_rng(1234)
  src3 u8 [64, 80, 3]    astronaut.jpg (PIL), rows 40:104, cols 200:280
  cases i32 [N, 7]       per case: source index, y0, x0, wh, ww, dh, dw
  out<i> u8 [dh, dw, c]  cv2.resize(src[y0:y0+wh, x0:x0+ww], (dw, dh), interpolation=cv2.INTER_AREA)
  jpeg_src0_q90 u8 [n]   cv2.imencode(".jpg", src0 as BGR, [IMWRITE_JPEG_QUALITY, 90]) bytes
  jpeg_src3_q50 u8 [n]   the same for src3 at quality 50
and metadata "opencv" (cv2.__version__) and "ipp" (whether IPP was compiled in; OpenCV does not use it for
INTER_AREA unless setUseIPP_NotExact(True)).
"""
import os
import sys

import cv2
import numpy as np
from PIL import Image
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "..", "shared", "fixtures", "photos")
OUT = os.path.join(ROOT, "tests", "fixtures", "resize_area.safetensors")


def photo(name, mode, rows, cols):
    a = np.asarray(Image.open(os.path.join(PHOTOS, name)).convert(mode))
    a = a[rows[0]:rows[1], cols[0]:cols[1]]
    return np.ascontiguousarray(a.reshape(a.shape[0], a.shape[1], -1))


srcs = [
    photo("chelsea.jpg", "RGB", (60, 180), (150, 310)),
    photo("camera_gray.jpg", "L", (200, 300), (200, 290)),
    np.random.default_rng(1234).integers(0, 256, (37, 53, 3), dtype=np.uint8),
    photo("astronaut.jpg", "RGB", (40, 104), (200, 280)),
]

# (source, y0, x0, wh, ww, dh, dw)
CASES = [
    (0, 0, 0, 120, 160, 37, 53),    # shrink, non-integer factors
    (0, 0, 0, 120, 160, 60, 80),    # 2x2 integer (OpenCV rounds ties up here)
    (0, 0, 0, 120, 160, 40, 32),    # 3x5 integer
    (0, 0, 0, 60, 160, 60, 80),     # 1x2 integer
    (0, 10, 20, 100, 140, 64, 64),  # RandomResizedCrop-like shrink
    (0, 5, 7, 21, 33, 64, 64),      # small crop grown (RRC at scale 0.08)
    (0, 0, 0, 100, 10, 30, 40),     # shrink rows, grow columns
    (0, 3, 4, 9, 150, 20, 50),      # grow rows, shrink columns
    (0, 2, 3, 105, 105, 64, 64),    # center-crop-like
    (0, 50, 60, 1, 1, 5, 7),        # 1x1 window grown
    (0, 0, 0, 120, 160, 1, 1),      # everything to one pixel
    (0, 0, 0, 120, 1, 13, 1),       # N x 1
    (0, 7, 0, 1, 160, 1, 23),       # 1 x N
    (0, 11, 13, 30, 41, 30, 41),    # same size: a copy
    (0, 0, 0, 120, 160, 119, 161),  # one row less, one column more
    (0, 0, 0, 120, 160, 3, 4),      # 40x40 integer
    (0, 1, 1, 117, 157, 7, 9),      # large non-integer factors
    (1, 0, 0, 100, 90, 33, 29),     # gray shrink
    (1, 0, 0, 100, 90, 50, 45),     # gray 2x2
    (1, 10, 10, 17, 13, 40, 40),    # gray grow
    (1, 0, 5, 100, 40, 7, 60),      # gray mixed
    (2, 0, 0, 37, 53, 17, 19),      # noise shrink
    (2, 0, 0, 37, 53, 80, 90),      # noise grow
    (2, 1, 2, 30, 40, 45, 20),      # noise mixed
    (2, 1, 1, 36, 52, 18, 26),      # noise 2x2 (many ties)
    (3, 0, 0, 64, 80, 48, 60),      # factor 4/3
    (3, 0, 0, 64, 80, 32, 40),      # 2x2
    (3, 3, 5, 50, 61, 11, 10),      # odd window
]


def main():
    tensors = {f"src{i}": s for i, s in enumerate(srcs)}
    rows = []
    for i, (si, y0, x0, wh, ww, dh, dw) in enumerate(CASES):
        s = srcs[si]
        assert 0 <= y0 and y0 + wh <= s.shape[0] and 0 <= x0 and x0 + ww <= s.shape[1]
        win = np.ascontiguousarray(s[y0:y0 + wh, x0:x0 + ww])
        out = cv2.resize(win, (dw, dh), interpolation=cv2.INTER_AREA)
        tensors[f"out{i}"] = np.ascontiguousarray(out.reshape(dh, dw, s.shape[2]))
        rows.append((si, y0, x0, wh, ww, dh, dw))
    tensors["cases"] = np.array(rows, dtype=np.int32)
    for si, q in ((0, 90), (3, 50)):
        ok, enc = cv2.imencode(".jpg", cv2.cvtColor(srcs[si], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        assert ok
        tensors[f"jpeg_src{si}_q{q}"] = np.frombuffer(enc.tobytes(), dtype=np.uint8).copy()
    ipp = "YES" if "Intel IPP:" in cv2.getBuildInformation() and cv2.ipp.useIPP() else "NO"
    save_file(tensors, OUT, metadata={"opencv": cv2.__version__, "ipp": ipp})
    print(f"wrote {OUT}: {len(CASES)} cases, {os.path.getsize(OUT)} bytes (OpenCV {cv2.__version__}, IPP {ipp})")


if __name__ == "__main__":
    sys.exit(main())
