"""Writes the fuzzer's seed shards (seeds/f32, seeds/f16, seeds/int8) from the layout documented
in core/src/shard.rs, independently of the Rust writer. Run: python3 make_seeds.py"""
import os
import struct
import zlib


def pad(b):
    return b + b"\0" * ((-len(b)) % 64)


def shard(element, dim, count, sections):
    body = b"".join(pad(s) for s in sections)
    header = b"REALMIDX" + struct.pack("<IIIIQQI", 1, element, dim, 0, count, len(body), zlib.crc32(body))
    header += struct.pack("<I", zlib.crc32(header))
    return header.ljust(64, b"\0") + body


ids = struct.pack("<3I", 7, 8, 9)
os.makedirs("seeds", exist_ok=True)
files = {
    "f32": shard(1, 2, 3, [ids, struct.pack("<6f", 1, 0, 0, 1, 0.5, 0.5)]),
    "f16": shard(2, 2, 3, [ids, struct.pack("<6e", 1, 0, 0, 1, 0.5, 0.5)]),
    "int8": shard(3, 2, 3, [ids, struct.pack("<3f", 1 / 127, 1 / 127, 0.5 / 127), struct.pack("<6b", 127, 0, 0, 127, 127, 127)]),
}
for name, data in files.items():
    with open(os.path.join("seeds", name), "wb") as f:
        f.write(data)
