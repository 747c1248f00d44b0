#!/usr/bin/env python3
"""safetensors_fp16.py - copy a safetensors file with every F32 tensor converted to F16 (IEEE
half, round to nearest even); other dtypes are copied as they are. Standard library only.

usage: safetensors_fp16.py IN.safetensors OUT.safetensors"""
import json
import struct
import sys
from array import array

src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    hlen = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(hlen))
    data = f.read()

meta = header.pop("__metadata__", None)
out_header, chunks, offset = {}, [], 0
for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
    begin, end = t["data_offsets"]
    raw = data[begin:end]
    dtype = t["dtype"]
    if dtype == "F32":
        floats = array("f")
        floats.frombytes(raw)
        if sys.byteorder != "little":
            floats.byteswap()
        raw = struct.pack("<%de" % len(floats), *floats)
        dtype = "F16"
    out_header[name] = {"dtype": dtype, "shape": t["shape"],
                        "data_offsets": [offset, offset + len(raw)]}
    chunks.append(raw)
    offset += len(raw)
if meta is not None:
    out_header["__metadata__"] = meta
hjson = json.dumps(out_header, separators=(",", ":")).encode()
hjson += b" " * ((8 - len(hjson) % 8) % 8)  # keep the data 8-byte aligned
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(hjson)))
    f.write(hjson)
    for c in chunks:
        f.write(c)
