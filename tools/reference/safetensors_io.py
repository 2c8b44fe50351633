"""Minimal safetensors reader/writer (numpy), so the tools need nothing beyond Debian's torch + numpy."""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16}
_NAMES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}


def save(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (float32 / float16) or ('BF16', uint16 array).
    Streams each tensor to disk, so multi-GB checkpoints need no second copy in memory."""
    header, arrays, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        if isinstance(value, tuple):
            dtype, arr = value
        else:
            arr = value
            dtype = _NAMES[np.dtype(arr.dtype)]
        arr = np.ascontiguousarray(arr)
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        arrays.append(arr)
        offset += arr.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for arr in arrays:
            arr.tofile(f)


def load(path):
    """Returns (dict name -> float32 numpy array, metadata dict)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        buffer = f.read()
    metadata = header.pop("__metadata__", {}) or {}
    out = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        if entry["dtype"] == "BF16":
            bits = np.frombuffer(buffer[begin:end], dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(buffer[begin:end], dtype=_DTYPES[entry["dtype"]]).astype(np.float32)
        out[name] = arr.reshape(entry["shape"])
    return out, metadata
