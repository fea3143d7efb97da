#!/usr/bin/env python3
"""check_beton_ffcv.py — checks that FFCV can read a .beton file (e.g. one written by ctrain's beton_write).

    python3 tools/check_beton_ffcv.py FILE.beton [--batch-size 16] [--crop 64]

When the `ffcv` package is importable, the file is opened with `ffcv.reader.Reader` and loaded end to end with
`ffcv.loader.Loader` (CenterCropRGBImageDecoder for images, the default decoders for the rest) in sequential
order through the OS cache, then through FFCV's process cache in quasi-random order (which needs page-aligned
pages with each sample on one page).

Without ffcv (it needs OpenCV's pkg-config files, numba and a compiler to install), the script re-implements
FFCV's reader logic with numpy, following ffcv/types.py, ffcv/reader.py and ffcv/memory_managers/base.py:
the header and field-descriptor dtypes, the numpy *aligned* metadata dtype built from the per-field dtypes,
the allocation table read from alloc_table_ptr to EOF, sorted by ptr and looked up with searchsorted (the way
FFCV's memory managers find every payload's size), and the sample -> pages map. Every sample is then read the
way FFCV's decoders read it, and the invariants FFCV relies on are checked.

Not run by the unit tests. Exit status 0 when the file passes, 1 with the problems listed otherwise.
"""
import argparse
import json
import os
import sys

import numpy as np

CURRENT_VERSION = 2
MIN_PAGE_SIZE = 1 << 21

# ffcv/types.py
HeaderType = np.dtype([('version', '<u2'), ('num_fields', '<u2'), ('page_size', '<u4'),
                       ('num_samples', '<u8'), ('alloc_table_ptr', '<u8')], align=True)
FieldDescType = np.dtype([('type_id', '<u1'), ('name', ('<u1', 16)), ('arguments', ('<u1', 1024))], align=True)
ALLOC_TABLE_TYPE = np.dtype([('sample_id', '<u8'), ('ptr', '<u8'), ('size', '<u8')])
NDArrayArgsType = np.dtype([('shape', '<u8', 32), ('type_length', '<u8')])

# ffcv/fields/*.py: metadata_type of each field class, by type id
RGB_META = np.dtype([('mode', '<u1'), ('width', '<u2'), ('height', '<u2'), ('data_ptr', '<u8')])
BYTES_META = np.dtype([('ptr', '<u8'), ('size', '<u8')])
TYPE_NAMES = {0: 'FloatField', 1: 'IntField', 2: 'RGBImageField', 3: 'BytesField', 4: 'NDArrayField',
              5: 'JSONField', 6: 'TorchTensorField'}


def decode_name(raw):
    raw = bytes(raw)
    return raw.split(b'\0', 1)[0].decode('ascii')


def ndarray_args(arguments):
    header = np.frombuffer(bytes(arguments[:NDArrayArgsType.itemsize]), dtype=NDArrayArgsType)[0]
    n = int(header['type_length'])
    type_desc = json.loads(bytes(arguments[NDArrayArgsType.itemsize:][:n]).decode('ascii'))
    type_desc = [tuple(x) for x in type_desc]
    assert len(type_desc) == 1
    dtype = np.dtype(type_desc)['f0']
    shape = list(int(s) for s in header['shape'])
    while shape and shape[-1] == 0:
        shape.pop()
    return dtype, tuple(shape)


def metadata_dtype(type_id):
    if type_id == 0:
        return np.dtype('<f8')
    if type_id == 1:
        return np.dtype('<i8')
    if type_id == 2:
        return RGB_META
    if type_id in (3, 5):
        return BYTES_META
    if type_id in (4, 6):
        return np.dtype('<u8')
    raise ValueError(f'type id {type_id} is not one FFCV decodes without a custom handler')


def decode_jpeg(data):
    try:
        import cv2
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return None if img is None else img[:, :, ::-1]
    except ImportError:
        pass
    try:
        import io
        from PIL import Image
        return np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
    except ImportError:
        return 'no decoder'


def check_numpy(path):
    """FFCV's reader logic in numpy; returns a list of problems."""
    problems = []
    size = os.path.getsize(path)
    header = np.fromfile(path, dtype=HeaderType, count=1)[0]
    if header['version'] != CURRENT_VERSION:
        return [f'file format mismatch: code={CURRENT_VERSION},file={header["version"]}']
    nf, ps, n = int(header['num_fields']), int(header['page_size']), int(header['num_samples'])
    a = int(header['alloc_table_ptr'])
    if ps < MIN_PAGE_SIZE or ps & (ps - 1):
        problems.append(f'page_size {ps} is not a power of two >= {MIN_PAGE_SIZE}')
    descs = np.fromfile(path, dtype=FieldDescType, count=nf, offset=HeaderType.itemsize)
    fields = []
    for d in descs:
        tid = int(d['type_id'])
        name = decode_name(d['name'])
        extra = ndarray_args(d['arguments']) if tid in (4, 6) else None
        fields.append((name, tid, extra))
    meta_type = np.dtype([('', metadata_dtype(t)) for _, t, _ in fields], align=True)
    moff = HeaderType.itemsize + descs.nbytes
    metadata = np.fromfile(path, dtype=meta_type, count=n, offset=moff)
    if len(metadata) != n:
        problems.append(f'metadata truncated: {len(metadata)} of {n} records')
        return problems
    dend = moff + meta_type.itemsize * n
    if a < dend or a > size or (size - a) % ALLOC_TABLE_TYPE.itemsize:
        problems.append(f'alloc_table_ptr {a} does not start a whole table before EOF {size}')
        return problems
    table = np.fromfile(path, dtype=ALLOC_TABLE_TYPE, offset=a)

    # ffcv/memory_managers/base.py
    order = np.argsort(table['ptr'])
    ptrs, sizes = table['ptr'][order], table['size'][order]
    dup = (ptrs[1:] == ptrs[:-1]) & (sizes[1:] != sizes[:-1])
    if dup.any():
        problems.append(f'allocations of different sizes share pointer {int(ptrs[1:][dup][0])}: '
                        'FFCV\'s ptr -> size lookup is ambiguous')
    shift = int(np.log2(ps))
    sample_to_pages = {}
    for sid, ptr in zip(table['sample_id'], table['ptr'] >> shift):
        sample_to_pages.setdefault(int(sid), set()).add(int(ptr))
    multi = [s for s, p in sample_to_pages.items() if len(p) > 1]
    if multi:
        problems.append(f'{len(multi)} samples span several pages (first: {multi[0]}); FFCV needs one page each')
    full = table[table['size'] > 0]  # empty allocations hold no bytes (FFCV gives some ptr 0)
    if len(full):
        first_page = (dend + ps - 1) // ps * ps
        if (full['ptr'] < first_page).any() or (full['ptr'] + full['size'] > a).any():
            problems.append('an allocation lies outside [first page, alloc table)')
        if (a - first_page) % ps:
            problems.append('the alloc table does not start on a page boundary (pages are not full size)')
        if ((full['ptr'] >> shift) != ((full['ptr'] + full['size'] - 1) >> shift)).any():
            problems.append('an allocation crosses a page boundary')

    data = np.memmap(path, dtype=np.uint8, mode='r')

    def read(ptr):  # what FFCV's mem_read returns for a data pointer
        ix = np.searchsorted(ptrs, ptr)
        if ix >= len(ptrs) or ptrs[ix] != ptr:
            raise KeyError(f'pointer {ptr} has no allocation-table entry')
        return data[ptr:ptr + int(sizes[ix])]

    counts = {'raw': 0, 'jpeg': 0, 'decoded': 0}
    for i in range(n):
        rec = metadata[i]
        for f, (name, tid, extra) in enumerate(fields):
            v = rec[f]
            where = f'sample {i} field {name!r}'
            try:
                if tid == 2:
                    buf = read(int(v['data_ptr']))
                    w, h = int(v['width']), int(v['height'])
                    if v['mode'] == 1:
                        counts['raw'] += 1
                        if len(buf) != w * h * 3:
                            problems.append(f'{where}: raw image has {len(buf)} bytes, expected {w * h * 3}')
                    else:
                        counts['jpeg'] += 1
                        img = decode_jpeg(bytes(buf))
                        if isinstance(img, str):
                            continue
                        if img is None or img.shape != (h, w, 3):
                            problems.append(f'{where}: JPEG does not decode to {h}x{w}x3')
                        else:
                            counts['decoded'] += 1
                elif tid in (3, 5):
                    ptr, sz = int(v['ptr']), int(v['size'])
                    buf = read(ptr)
                    if len(buf) != sz:
                        problems.append(f'{where}: table size {len(buf)} != metadata size {sz}')
                    if tid == 5:
                        raw = bytes(buf)
                        if not raw.endswith(b'\0'):
                            problems.append(f'{where}: JSON data does not end with a NUL')
                        json.loads(raw[:-1].decode('utf-8'))
                elif tid in (4, 6):
                    dtype, shape = extra
                    buf = read(int(v))
                    if len(buf) != dtype.itemsize * int(np.prod(shape)):
                        problems.append(f'{where}: array has {len(buf)} bytes for {dtype} {shape}')
            except Exception as e:  # noqa: BLE001 - report every sample's problem
                problems.append(f'{where}: {e}')
    print(f'numpy re-implementation of the FFCV reader: {n} samples, {nf} fields '
          f'({", ".join(f"{nm}:{TYPE_NAMES.get(t, t)}" for nm, t, _ in fields)}), page size {ps}, '
          f'{len(table)} allocations; images: {counts["raw"]} raw, {counts["jpeg"]} JPEG '
          f'({counts["decoded"]} decoded)')
    return problems


def check_ffcv(path, batch_size, crop):
    """Reads the file with FFCV itself; raises on failure."""
    from ffcv.loader import Loader, OrderOption
    from ffcv.reader import Reader
    from ffcv.fields.decoders import (BytesDecoder, CenterCropRGBImageDecoder, FloatDecoder, IntDecoder,
                                      NDArrayDecoder)
    reader = Reader(path)
    handlers = reader.handlers if isinstance(reader.handlers, dict) else dict(
        zip([decode_name(d['name']) for d in reader.field_descriptors], reader.handlers))
    def pipelines():
        """Fresh decoder objects for every Loader (FFCV's Loader takes ownership of the ones it is given)."""
        out = {}
        for name, h in handlers.items():
            cls = type(h).__name__
            if cls == 'RGBImageField':
                out[name] = [CenterCropRGBImageDecoder((crop, crop), ratio=224 / 256)]
            elif cls == 'IntField':
                out[name] = [IntDecoder()]
            elif cls == 'FloatField':
                out[name] = [FloatDecoder()]
            elif cls in ('BytesField', 'JSONField'):
                out[name] = [BytesDecoder()]
            else:
                out[name] = [NDArrayDecoder()]
        return out
    n = int(reader.num_samples)
    print(f'ffcv.reader.Reader: {n} samples, fields {[(k, type(v).__name__) for k, v in handlers.items()]}')
    for os_cache, order in ((True, OrderOption.SEQUENTIAL), (False, OrderOption.QUASI_RANDOM)):
        loader = Loader(path, batch_size=batch_size, num_workers=2, order=order, os_cache=os_cache,
                        pipelines=pipelines(), drop_last=False)
        seen = 0
        for batch in loader:
            seen += len(batch[0])
        print(f'ffcv.loader.Loader(os_cache={os_cache}, order={order.name}): {seen} samples loaded')
        if seen != n:
            raise RuntimeError(f'Loader returned {seen} samples, expected {n}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('file')
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--crop', type=int, default=64)
    args = ap.parse_args()
    problems = check_numpy(args.file)
    try:
        import ffcv  # noqa: F401
        have_ffcv = True
    except ImportError as e:
        have_ffcv = False
        print(f'ffcv is not importable ({e}); checked with the numpy re-implementation only')
    if have_ffcv:
        try:
            check_ffcv(args.file, args.batch_size, args.crop)
        except Exception as e:  # noqa: BLE001
            problems.append(f'FFCV failed: {type(e).__name__}: {e}')
    for p in problems:
        print(f'{args.file}: {p}', file=sys.stderr)
    print('OK' if not problems else f'{len(problems)} problem(s)')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
