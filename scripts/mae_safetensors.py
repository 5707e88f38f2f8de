"""Minimal safetensors reader/writer for torch tensors (F32, F64, I64), written out so that the
scripts need only Debian's python3-torch and python3-numpy."""
import json
import os
import struct

import numpy as np
import torch

_DTYPES = {'F32': np.float32, 'F64': np.float64, 'I64': np.int64}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def save_safetensors(path, tensors, metadata=None):
    """Write {name: tensor} to path atomically (temporary file, then rename)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().cpu().numpy())
        if a.dtype not in _NAMES:
            raise ValueError(f"{name}: dtype {a.dtype} is not supported (float32, float64, int64)")
        b = a.astype(a.dtype.newbyteorder('<')).tobytes()
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - (8 + len(h)) % 8) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_safetensors(path):
    """-> ({name: tensor}, metadata) from a safetensors file."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    n = struct.unpack('<Q', data[:8])[0]
    if 8 + n > len(data):
        raise ValueError(f"{path}: truncated header")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        dt = _DTYPES.get(e['dtype'])
        if dt is None:
            raise ValueError(f"{path}: tensor {name}: dtype {e['dtype']} is not supported")
        b, en = e['data_offsets']
        if 8 + n + en > len(data):
            raise ValueError(f"{path}: tensor {name} lies beyond the end of the file (truncated?)")
        a = np.frombuffer(data[8 + n + b:8 + n + en], dtype=np.dtype(dt).newbyteorder('<'))
        out[name] = torch.from_numpy(a.astype(dt).reshape(e['shape']).copy())
    return out, meta
