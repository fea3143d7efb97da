#!/usr/bin/env python3
"""make_io_fixtures.py — regenerates the small file-format fixtures that tests/unit/test_io.c reads:

  tests/fixtures/st_python_small.safetensors  written by safetensors.torch.save_file: tensors
      "a.f32"    F32  [2,3,4]  arange(24) * 0.5 - 3
      "b.f16"    F16  [6]      arange(6) - 2.5
      "c.bf16"   BF16 [2,2]    [[1.5, -2], [3.25, 0]]
      "d.f64"    F64  [3]      [0.1, -1e10, 7]
      "e.i64"    I64  [2,2]    [[1, -2], [3, 40000000000]]
      "f.i32"    I32  [3]      [-7, 0, 123456]
      "g.u8"     U8   [5]      arange(5) * 60
      "h.bool"   BOOL [4]      [True, False, False, True]
      "scalar"   F32  []       3.0
      "empty"    F32  [0,4]
    and metadata {"format": "pt", "source": "make_io_fixtures.py"}.
  tests/fixtures/npy_f32_2x3x4x1.npy   float32 [2,3,4,1]  arange(24) / 4 - 1
  tests/fixtures/npy_u8.npy            uint8 [2,5]        arange(10) * 25
  tests/fixtures/npy_i64.npy           int64 [6]          [0, 9, 3, 3, 1, -5]
  tests/fixtures/npy_i32.npy           int32 [4]          [2, 7, 1, 8]
  tests/fixtures/npy_bool.npy          bool [3]           [True, False, True]
  tests/fixtures/npy_f64_scalar.npy    float64 []         2.5
  tests/fixtures/npy_v2.npy            float32 [3], format version 2.0, [1, 2, 3]
  tests/fixtures/npy_fortran.npy       float32 [2,3] Fortran order (must be rejected)
  tests/fixtures/npy_bigendian.npy     >f4 [2] (must be rejected)

Run from anywhere: python3 tools/make_io_fixtures.py (needs numpy, torch, safetensors).
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors = {
        "a.f32": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.5 - 3,
        "b.f16": torch.arange(6, dtype=torch.float16) - 2.5,
        "c.bf16": torch.tensor([[1.5, -2.0], [3.25, 0.0]], dtype=torch.bfloat16),
        "d.f64": torch.tensor([0.1, -1e10, 7.0], dtype=torch.float64),
        "e.i64": torch.tensor([[1, -2], [3, 40000000000]], dtype=torch.int64),
        "f.i32": torch.tensor([-7, 0, 123456], dtype=torch.int32),
        "g.u8": (torch.arange(5) * 60).to(torch.uint8),
        "h.bool": torch.tensor([True, False, False, True]),
        "scalar": torch.tensor(3.0, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
    }
    save_file(tensors, os.path.join(OUT, "st_python_small.safetensors"),
              metadata={"format": "pt", "source": "make_io_fixtures.py"})

    def npy(name, arr, **kw):
        path = os.path.join(OUT, name)
        if kw:
            with open(path, "wb") as f:
                np.lib.format.write_array(f, arr, **kw)
        else:
            np.save(path, arr)

    npy("npy_f32_2x3x4x1.npy", (np.arange(24, dtype=np.float32) / 4 - 1).reshape(2, 3, 4, 1))
    npy("npy_u8.npy", (np.arange(10) * 25).astype(np.uint8).reshape(2, 5))
    npy("npy_i64.npy", np.array([0, 9, 3, 3, 1, -5], dtype=np.int64))
    npy("npy_i32.npy", np.array([2, 7, 1, 8], dtype=np.int32))
    npy("npy_bool.npy", np.array([True, False, True]))
    npy("npy_f64_scalar.npy", np.array(2.5, dtype=np.float64))
    npy("npy_v2.npy", np.array([1, 2, 3], dtype=np.float32), version=(2, 0))
    npy("npy_fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    npy("npy_bigendian.npy", np.array([1, 2], dtype=">f4"))


if __name__ == "__main__":
    main()
