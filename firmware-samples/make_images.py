#!/usr/bin/env python3
"""Deterministic sample firmware images for Equicast's release tests, demo and benchmarks.

Writes, into the output directory (default: firmware-samples/out):
  sample-4m-v1.img, sample-4m-v2.img, sample-16m-v1.img, sample-16m-v2.img

Each v1 image is built from 4 KiB blocks that look like what firmware images are made of: machine-code-like
bytes (skewed, about half compressible), text tables, zero padding, and already-compressed data (incompressible).
Each v2 is its v1 with about 1% of the bytes changed in a few places: three overwritten regions and one
insertion (which shifts everything after it, the case content-defined chunking exists for). The same name always
has the same bytes, on any machine: every random choice comes from BLAKE2b in counter mode.
"""

import argparse
import hashlib
import os
import sys

BLOCK = 4096
MIB = 1 << 20


class Stream:
    """BLAKE2b-512 in counter mode: a reproducible byte stream for one label."""

    def __init__(self, label: str):
        self.label = label.encode()
        self.counter = 0
        self.buffer = b""

    def take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            h = hashlib.blake2b(self.label + self.counter.to_bytes(8, "big"), digest_size=64)
            self.buffer += h.digest()
            self.counter += 1
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def below(self, n: int) -> int:
        return int.from_bytes(self.take(8), "big") % n


WORDS = [b"equicast", b"firmware", b"kernel", b"init", b"mount", b"device", b"error", b"config",
         b"network", b"driver", b"partition", b"update", b"version", b"boot", b"sensor", b"gateway"]


def block(rng: Stream) -> bytes:
    kind = rng.below(10)
    if kind < 5:  # machine-code-like: a few opcodes recur often
        raw = rng.take(BLOCK)
        return bytes(b & 0x3F if b & 0xC0 else b for b in raw)
    if kind < 7:  # text tables
        out = bytearray()
        while len(out) < BLOCK:
            out += WORDS[rng.below(len(WORDS))] + (b"\n" if rng.below(8) == 0 else b" ")
        return bytes(out[:BLOCK])
    if kind < 8:  # padding
        return bytes(BLOCK)
    return rng.take(BLOCK)  # compressed data


def image_v1(name: str, size: int) -> bytes:
    rng = Stream(f"equicast-sample/{name}/v1")
    return b"".join(block(rng) for _ in range(size // BLOCK))


def image_v2(name: str, v1: bytes) -> bytes:
    """About 1% changed: three overwrites of 0.25% each and one 0.25% insertion, at seeded places."""
    rng = Stream(f"equicast-sample/{name}/v2")
    img = bytearray(v1)
    span = max(1, len(v1) // 400)
    for _ in range(3):
        at = rng.below(len(img) - span)
        img[at:at + span] = rng.take(span)
    at = rng.below(len(img))
    img[at:at] = rng.take(span)
    return bytes(img)


def write_atomically(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default=os.path.join(here, "out"), help="output directory")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, size in (("sample-4m", 4 * MIB), ("sample-16m", 16 * MIB)):
        v1 = image_v1(name, size)
        v2 = image_v2(name, v1)
        for version, data in (("v1", v1), ("v2", v2)):
            path = os.path.join(args.out, f"{name}-{version}.img")
            write_atomically(path, data)
            print(f"{path}: {len(data)} bytes, blake2b-256 {hashlib.blake2b(data, digest_size=32).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
