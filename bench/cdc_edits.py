#!/usr/bin/env python3
"""How many bytes of new chunks an edit of a firmware image costs, for chunker masks side by side.

Cuts the first 8 MiB of the sample 16 MiB firmware with each rule (minimum 16 KiB, normal 64 KiB, maximum 256 KiB;
HARD/EASY = the bits that must be zero before / after the normal size; the release format uses 16/12), then applies
N seeded edits one at a time, every other one an insertion and the rest overwrites of L bytes, and re-cuts from the
boundary before each edit until a boundary lines up with one of the original image again. Prints the chunk sizes
and the mean bytes of new chunks per edit (before compression). The rule is Tests/vectors/cdc_reference.py's, with the masks as parameters.

Usage: bench/cdc_edits.py IMAGE [--edits N] [--length L] [--rules 16/12,18/12,...]
(IMAGE: bench/out/samples/sample-16m-v1.img, from firmware-samples/make-samples.sh)
"""
import argparse
import bisect
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "vectors"))
from cdc_reference import chunk_length  # noqa: E402


def boundaries(data, hard, easy):
    out, start = [0], 0
    while start < len(data):
        start += chunk_length(data, start, hard, easy)
        out.append(start)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("image")
    p.add_argument("--edits", type=int, default=100)
    p.add_argument("--length", type=int, default=42000)
    p.add_argument("--rules", default="16/12,18/12,18/14,16/14")
    args = p.parse_args()
    with open(args.image, "rb") as f:
        image = f.read()[: 8 << 20]
    rng = random.Random(7)
    edits = []
    for k in range(args.edits):
        at = rng.randrange(1 << 20, len(image) - (2 << 20))
        edits.append((at, k % 2 == 0, bytes(rng.getrandbits(8) for _ in range(args.length))))
    print(f"{args.edits} edits of {args.length} bytes (half insertions) in the first 8 MiB of {os.path.basename(args.image)}")
    for rule in args.rules.split(","):
        hard, easy = (int(x) for x in rule.split("/"))
        cuts = boundaries(image, hard, easy)
        old = set(cuts)
        sizes = sorted(b - a for a, b in zip(cuts, cuts[1:]))
        new_bytes = new_chunks = 0
        for at, insertion, payload in edits:
            edited = image[:at] + payload + image[at + (0 if insertion else len(payload)):]
            shift = len(payload) if insertion else 0
            start = cuts[bisect.bisect_right(cuts, at) - 1]
            while start < len(edited):
                end = start + chunk_length(edited, start, hard, easy)
                new_bytes += end - start
                new_chunks += 1
                if end >= at + len(payload) and end - shift in old:
                    break
                start = end
        print(f"  {hard}/{easy}: chunks mean {sum(sizes) / len(sizes):,.0f} bytes, 99th percentile {sizes[int(0.99 * len(sizes))]:,}, "
              f"largest {sizes[-1]:,}; per edit {new_bytes / len(edits) / 1024:.1f} KiB in {new_chunks / len(edits):.2f} new chunks")


if __name__ == "__main__":
    main()
