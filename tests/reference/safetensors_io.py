"""Minimal, dependency-free safetensors reader/writer (standard library only).

File layout (the safetensors format):
  * 8 bytes: little-endian unsigned 64-bit N = length of the JSON header in bytes
  * N bytes: UTF-8 JSON object
        { "<tensor name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
          ...,
          "__metadata__": {"<str>": "<str>", ...} }        (optional)
    padded with ASCII spaces so that 8 + N is a multiple of 8
  * the raw little-endian tensor data; data_offsets are relative to the first byte
    after the header, tensors are laid out contiguously (here: sorted by name).
  A scalar has shape [] and holds exactly one element.
"""

import array
import json
import struct
import sys

# dtype name -> (bytes per element, array module typecode or None)
DTYPES = {
    "F64": (8, "d"),
    "F32": (4, "f"),
    "F16": (2, None),
    "BF16": (2, None),
    "I64": (8, "q"),
    "I32": (4, "i"),
    "I16": (2, "h"),
    "I8": (1, "b"),
    "U8": (1, "B"),
    "BOOL": (1, "B"),
}


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> (dtype_name, shape list, raw little-endian bytes)."""
    if sys.byteorder != "little":
        raise RuntimeError("writer assumes a little-endian host")
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        if dtype not in DTYPES:
            raise ValueError(f"{name}: unsupported dtype {dtype}")
        shape = [int(d) for d in shape]
        expected = _numel(shape) * DTYPES[dtype][0]
        if len(data) != expected:
            raise ValueError(f"{name}: {len(data)} bytes, expected {expected} for {dtype}{shape}")
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        chunks.append(bytes(data))
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for c in chunks:
            f.write(c)


class Tensor:
    def __init__(self, name, dtype, shape, data):
        self.name, self.dtype, self.shape, self.data = name, dtype, shape, data

    def values(self):
        """Flat list of Python numbers (row-major)."""
        code = DTYPES[self.dtype][1]
        if code is None:
            raise ValueError(f"{self.name}: no decoder for {self.dtype}")
        a = array.array(code)
        a.frombytes(self.data)
        if sys.byteorder != "little":
            a.byteswap()
        return a.tolist()

    def __repr__(self):
        return f"Tensor({self.name!r}, {self.dtype}, {self.shape})"


def read_safetensors(path):
    """Returns (dict name -> Tensor, metadata dict or None). Validates the layout strictly."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} exceeds file size {len(blob)}")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", None)
    tensors = {}
    spans = []
    for name, info in header.items():
        dtype, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise ValueError(f"{path}: {name}: unknown dtype {dtype}")
        if not (0 <= b <= e <= len(data)):
            raise ValueError(f"{path}: {name}: offsets {b},{e} outside data of {len(data)} bytes")
        if e - b != _numel(shape) * DTYPES[dtype][0]:
            raise ValueError(f"{path}: {name}: {e - b} bytes do not match {dtype}{shape}")
        tensors[name] = Tensor(name, dtype, list(shape), data[b:e])
        spans.append((b, e, name))
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise ValueError(f"{path}: {name}: gap or overlap at byte {pos}")
        pos = e
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} trailing bytes after the last tensor")
    return tensors, metadata
