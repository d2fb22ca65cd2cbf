"""Writes the fuzzer's seed shards (seeds/f32, seeds/f16, seeds/int8 in format version 1;
seeds/f32-v2, version 2 with the fingerprint of PASSAGES) from the layout documented in
core/src/index/shard.rs and text/corpus.rs, independently of the Rust writer.
Run: python3 make_seeds.py"""
import os
import struct
import zlib


def pad(b):
    return b + b"\0" * ((-len(b)) % 64)


# The corpus whose fingerprint seeds/f32-v2 records (the Rust test holds the same passages).
PASSAGES = [("Alpha", "The first letter."), ("", "A passage without a title."), ("\u03a9mega", "Last, \u00fcn\u00efcode.")]


def fingerprint(passages):
    crc = 0
    for title, text in passages:
        for field in (title, text):
            data = field.encode("utf-8")
            crc = zlib.crc32(struct.pack("<I", len(data)) + data, crc)
    return max(crc, 1)


def shard(element, dim, count, sections, version=1, corpus=0):
    body = b"".join(pad(s) for s in sections)
    header = b"REALMIDX" + struct.pack("<IIIIQQI", version, element, dim, corpus, count, len(body), zlib.crc32(body))
    header += struct.pack("<I", zlib.crc32(header))
    return header.ljust(64, b"\0") + body


ids = struct.pack("<3I", 7, 8, 9)
os.makedirs("seeds", exist_ok=True)
files = {
    "f32": shard(1, 2, 3, [ids, struct.pack("<6f", 1, 0, 0, 1, 0.5, 0.5)]),
    "f16": shard(2, 2, 3, [ids, struct.pack("<6e", 1, 0, 0, 1, 0.5, 0.5)]),
    "f32-v2": shard(1, 2, 3, [ids, struct.pack("<6f", 1, 0, 0, 1, 0.5, 0.5)], version=2, corpus=fingerprint(PASSAGES)),
    "int8": shard(3, 2, 3, [ids, struct.pack("<3f", 1 / 127, 1 / 127, 0.5 / 127), struct.pack("<6b", 127, 0, 0, 127, 127, 127)]),
}
for name, data in files.items():
    with open(os.path.join("seeds", name), "wb") as f:
        f.write(data)
